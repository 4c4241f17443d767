"""python manage.py load_demo — the demo of `make run`: twelve images, sample drafts, one user per role.

Idempotent: images already stored are recognised by sha256, sample drafts are only added to an image that
has none, and existing users are left as they are. Running it twice changes nothing.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.roles import ADMIN, ANNOTATOR, RESEARCHER
from corpus.models import Caption, Domain, Image, Instruction, Origin
from corpus.services.imports import import_images, sources_from_paths
from corpus.services.items import create_caption, create_instruction

DEMO_DIR = Path(settings.BASE_DIR) / "demo" / "images"
SAMPLE_MODEL = "sample data"

# Fixed, documented passwords: this is a local demo (README "Demo"). Never use them anywhere else.
DEMO_USERS = [
    ("admin", "admin-demo-pw", ADMIN),
    ("annotator", "annotator-demo-pw", ANNOTATOR),
    ("researcher", "researcher-demo-pw", RESEARCHER),
]

J, M, S, L = "judgement", "multiple_choice", "short_vqa", "long_vqa"


@dataclass
class Sample:
    """A sample draft. `wrong` says why it is a deliberate hallucination (empty when it is right)."""

    type: str
    question: str
    answer: str
    options: list[str] = field(default_factory=list)
    wrong: str = ""


@dataclass
class DemoImage:
    file: str
    domain: str
    caption: str
    instructions: list[Sample]
    caption_wrong: str = ""
    prior: str = ""


DEMO = [
    DemoImage(
        "astronaut.png",
        "celebrity-recognition",
        "Portrait of a smiling astronaut in an orange NASA flight suit with mission patches, holding a white "
        "helmet. A United States flag hangs on the left and a model of the Space Shuttle stands on the right.",
        [
            Sample(J, "Is the astronaut holding a helmet?", "Yes"),
            Sample(M, "What colour is the flight suit?", "A", ["Orange", "Blue", "White", "Green"]),
            Sample(S, "What flag is visible on the left?", "United States flag"),
            Sample(
                L,
                "What suggests this is an official astronaut portrait?",
                "The flight suit with mission patches, the helmet, the flag and the shuttle model form the "
                "typical setting of an official NASA portrait.",
            ),
        ],
        prior="Eileen Collins, NASA astronaut",
    ),
    DemoImage(
        "chelsea.png",
        "species-recognition",
        "Close-up of a tabby cat with green eyes, a pink nose and long white whiskers, looking straight at "
        "the camera. A red collar with a small bell hangs around its neck.",
        [
            Sample(J, "Is the animal a dog?", "No"),
            Sample(S, "What colour are the cat's eyes?", "green"),
            Sample(
                M,
                "What is the coat pattern of the cat?",
                "B",
                ["Spotted", "Tabby stripes", "Solid black", "Calico"],
            ),
            Sample(
                L,
                "Which features identify the species of this animal?",
                "The pointed ears, the slit pupils, the long whiskers and the striped fur show that it is a "
                "domestic tabby cat.",
            ),
        ],
        caption_wrong="object: there is no collar and no bell; only the cat's head is visible",
    ),
    DemoImage(
        "coffee.png",
        "attribute-recognition",
        "A white cup of espresso with a golden crema sits on a red saucer with a metal spoon, on a wooden "
        "table.",
        [
            Sample(J, "Is the saucer red?", "Yes"),
            Sample(M, "What is the table made of?", "C", ["Glass", "Marble", "Wood", "Metal"]),
            Sample(S, "What colour is the cup?", "white"),
            Sample(S, "What drink is in the cup?", "espresso"),
            Sample(
                J,
                "Is there a biscuit on the saucer?",
                "Yes",
                wrong="object: there is no biscuit, only the cup and a spoon; the answer should be No",
            ),
        ],
    ),
    DemoImage(
        "rocket.jpg",
        "image-scene",
        "A white rocket stands on its launch pad at dusk, between tall lightning towers, lit by bright "
        "floodlights against a deep blue sky.",
        [
            Sample(J, "Was the photo taken in daylight?", "No"),
            Sample(
                M,
                "What is the main object in the scene?",
                "B",
                ["An airliner", "A rocket on a launch pad", "A lighthouse", "A radio mast"],
            ),
            Sample(
                S,
                "How many lightning towers surround the rocket?",
                "two",
                wrong="count: four lightning towers are visible, two near and two further back",
            ),
            Sample(
                L,
                "Describe the setting of this scene.",
                "It is a launch site at dusk, with a rocket ready on the pad, towers around it and floodlights "
                "shining along the ground.",
            ),
        ],
        prior="Falcon 9 with DSCOVR, Cape Canaveral",
    ),
    DemoImage(
        "hubble_deep_field.jpg",
        "image-description",
        "A deep-space photograph filled with hundreds of small galaxies of different shapes and colours, "
        "scattered over a black background.",
        [
            Sample(J, "Is the background of the image black?", "Yes"),
            Sample(
                M,
                "What do the small coloured shapes show?",
                "A",
                ["Galaxies", "Fireflies", "Raindrops", "Coins"],
            ),
            Sample(S, "What kind of telescope image is this?", "a deep field"),
            Sample(
                L,
                "Describe what the image shows.",
                "The image shows a dark patch of sky crowded with faint galaxies, some spiral, some elliptical, "
                "in white, orange and blue.",
            ),
        ],
        prior="Hubble eXtreme Deep Field",
    ),
    DemoImage(
        "coins.png",
        "numerical-calculation",
        "A grey photograph of twenty-four ancient coins laid out in four rows of six on a dark background.",
        [
            Sample(S, "How many coins are in the picture?", "24"),
            Sample(
                M,
                "How many rows of coins are there?",
                "C",
                ["2", "3", "4", "5"],
            ),
            Sample(
                J,
                "Are there more than thirty coins?",
                "Yes",
                wrong="count: there are 24 coins, so the answer should be No",
            ),
            Sample(
                L,
                "How are the coins arranged?",
                "The coins are arranged in a neat grid of four rows, each holding six coins of slightly "
                "different sizes.",
            ),
        ],
    ),
    DemoImage(
        "text.png",
        "ocr",
        "A sheet of paper photographed at an angle, covered in handwritten mathematics with brackets, "
        "equals signs and letters.",
        [
            Sample(J, "Is the text handwritten?", "Yes"),
            Sample(
                M,
                "What kind of writing is on the paper?",
                "A",
                ["Mathematics", "A letter", "A shopping list"],
            ),
            Sample(S, "What symbol appears several times?", "equals sign"),
            Sample(
                L,
                "Describe how the text appears in the image.",
                "The handwriting runs diagonally across the page because the paper was photographed at an "
                "angle, in grey ink.",
            ),
        ],
    ),
    DemoImage(
        "camera.png",
        "object-relation",
        "A black-and-white photograph of a man in a dark coat filming with a camera mounted on a tripod, on "
        "a lawn, with buildings in the distance. A dog sits at his feet.",
        [
            Sample(J, "Is the camera on a tripod?", "Yes"),
            Sample(
                M,
                "What is the man doing?",
                "A",
                ["Looking through a camera", "Reading a book", "Riding a bicycle", "Painting"],
            ),
            Sample(S, "What is the man wearing?", "a dark coat"),
            Sample(
                L,
                "How is the man interacting with the objects around him?",
                "He bends towards the camera on the tripod and looks through its viewfinder while adjusting it "
                "with his hands.",
            ),
        ],
        caption_wrong="object: there is no dog in the picture",
    ),
    DemoImage(
        "clock_motion.png",
        "image-quality",
        "A round wall clock on a grey wall, heavily smeared by horizontal motion blur so that its hands "
        "cannot be read.",
        [
            Sample(J, "Is the image sharp?", "No"),
            Sample(
                M,
                "What is the main quality problem?",
                "B",
                ["Overexposure", "Motion blur", "Colour noise", "None"],
            ),
            Sample(
                S,
                "What time does the clock show?",
                "ten past two",
                wrong="text/OCR: the hands cannot be read through the blur; no time can be given",
            ),
            Sample(
                L,
                "What caused the quality problem in this image?",
                "The camera or the clock moved during the exposure, which smeared the clock sideways into a "
                "blur.",
            ),
        ],
    ),
    DemoImage(
        "horse.png",
        "image-style",
        "A solid black silhouette of a standing horse, facing right, on a plain white background.",
        [
            Sample(J, "Is the image a colour photograph?", "No"),
            Sample(
                M,
                "What style is the image?",
                "D",
                ["Oil painting", "Photograph", "Watercolour", "Silhouette"],
            ),
            Sample(
                M,
                "Which way does the horse face?",
                "A",
                ["Left", "Right"],
                wrong="spatial relation: the horse faces right, so the answer should be B",
            ),
            Sample(S, "What colour is the horse?", "black"),
            Sample(
                L,
                "Describe the visual style of the image.",
                "It is a flat graphic silhouette with no shading or detail, black on white, like a clip-art "
                "icon.",
            ),
        ],
    ),
    DemoImage(
        "brick.png",
        "attribute-recognition",
        "A grey close-up of a brick wall laid in a running bond, the bricks long and narrow, seen at a slight "
        "angle.",
        [
            Sample(J, "Are the bricks laid in a pattern?", "Yes"),
            Sample(M, "What is the wall made of?", "B", ["Wood", "Brick", "Glass", "Stone blocks"]),
            Sample(S, "What colour is the image?", "grey"),
            Sample(
                L,
                "Describe the shape and arrangement of the bricks.",
                "The bricks are long, thin rectangles, and each row is shifted by half a brick from the row "
                "below it.",
            ),
        ],
    ),
    DemoImage(
        "retina.jpg",
        "image-description",
        "A fundus photograph of an eye: an orange-red disc crossed by branching blood vessels, with a bright "
        "optic disc on the left and a darker spot at the centre. A small tear in the retina shows at the "
        "bottom.",
        [
            Sample(J, "Is the optic disc on the left side of the image?", "Yes"),
            Sample(
                M,
                "What kind of image is this?",
                "C",
                ["An X-ray", "A map", "A fundus photograph", "A planet"],
            ),
            Sample(S, "What colour dominates the image?", "orange-red"),
            Sample(
                L,
                "Describe the main structures visible in the image.",
                "Blood vessels branch out from the bright optic disc on the left and spread across the retina "
                "towards the darker macula.",
            ),
        ],
        caption_wrong="attribute: the retina is normal; there is no tear anywhere in the image",
    ),
]


def read_licenses(path: Path) -> dict[str, tuple[str, str]]:
    """file → (source, licence) from the table in demo/images/LICENSES.md."""
    rows: dict[str, tuple[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[\w.-]+\.(png|jpg)", cells[0]):
            rows[cells[0]] = (cells[3], cells[4])
    return rows


def deliberate_hallucinations() -> list[tuple[str, str, str]]:
    """(file, what, why) for every sample draft that is wrong on purpose."""
    out = []
    for demo in DEMO:
        if demo.caption_wrong:
            out.append((demo.file, "caption", demo.caption_wrong))
        for sample in demo.instructions:
            if sample.wrong:
                out.append((demo.file, f"{sample.type}: {sample.question}", sample.wrong))
    return out


class Command(BaseCommand):
    help = "Load the demo: twelve images with sample captions and instructions, and one user per role."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000", help="port printed in the URL at the end")

    def handle(self, *args, port, **options):
        licenses = read_licenses(DEMO_DIR / "LICENSES.md")
        users = self._users()
        admin = users["admin"]
        new_images = new_items = 0
        for demo in DEMO:
            path = DEMO_DIR / demo.file
            if demo.file not in licenses or not path.exists():
                raise CommandError(f"demo image {demo.file} or its LICENSES.md row is missing")
            domain = Domain.objects.filter(slug=demo.domain).first()
            if domain is None:
                raise CommandError(f"domain {demo.domain} is missing: run `manage.py migrate` first")
            source, license = licenses[demo.file]
            summary = import_images(
                sources_from_paths([path]),
                domain=domain,
                by=admin,
                source=source,
                license=f"{license} (see demo/images/LICENSES.md)",
                prior_knowledge=demo.prior,
                is_sample=True,
            )
            if summary.rejected or summary.unreadable:
                raise CommandError(f"demo image {demo.file} was refused: {summary.results[0].reason}")
            result = summary.results[0]
            new_images += len(summary.imported)
            image = Image.objects.get(pk=result.image_id or result.duplicate_of)
            new_items += self._samples(image, demo)
        self.stdout.write(
            f"Demo: {new_images} new images, {new_items} new sample drafts ({len(DEMO)} images)."
        )
        self.stdout.write("Deliberate hallucinations to correct: docs/review.md (Try it on the demo).")
        self.stdout.write("Demo users (local demo only):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {username:<11} password {password:<20} role {role}")
        self.stdout.write(f"Open http://127.0.0.1:{port}/")

    def _users(self) -> dict:
        User = get_user_model()
        users = {}
        for username, password, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username=username, password=password)
                if role == ADMIN:
                    user.is_staff = user.is_superuser = True
                    user.save(update_fields=["is_staff", "is_superuser"])
                user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    @transaction.atomic
    def _samples(self, image: Image, demo: DemoImage) -> int:
        """Sample drafts for an image that has none yet (the idempotency check)."""
        image = Image.objects.select_for_update().get(pk=image.pk)
        has_samples = (
            Caption.objects.filter(image=image, origin=Origin.SAMPLE).exists()
            or Instruction.objects.filter(image=image, origin=Origin.SAMPLE).exists()
        )
        if has_samples:
            return 0
        provenance = {"origin": Origin.SAMPLE, "model_name": SAMPLE_MODEL}
        caption = create_caption(image, text=demo.caption, **provenance)
        for sample in demo.instructions:
            create_instruction(
                image,
                type=sample.type,
                question=sample.question,
                options=sample.options,
                answer=sample.answer,
                caption=caption,
                **provenance,
            )
        return 1 + len(demo.instructions)
