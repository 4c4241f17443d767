"""The 25 domains of the public MMInstruct seed set, with a description and short guidelines each."""

from django.db import migrations

DOMAINS = [
    ("Posters", "posters", "Movie, event and advertising posters: title, people, dates, layout and message."),
    ("Image Scene", "image-scene", "What kind of place or situation the image shows, indoors or outdoors."),
    ("Landmark", "landmark", "Famous buildings, monuments and natural sites, and where they are."),
    ("Brand Recognition", "brand-recognition", "Logos, products and brands visible in the image."),
    ("Artwork", "artwork", "Paintings, sculptures and other art: subject, style, artist and period."),
    ("Object Localization", "object-localization", "Where objects are in the frame and how they are placed."),
    ("Attribute Recognition", "attribute-recognition", "Colours, materials, shapes, sizes and states of objects."),
    ("OCR", "ocr", "Text that appears in the image, read exactly."),
    ("Object Relation", "object-relation", "How objects and people relate to and interact with each other."),
    ("Image Comparison", "image-comparison", "Differences and similarities between parts of an image or images."),
    ("Image Style", "image-style", "Photographic or artistic style, medium, lighting and composition."),
    ("Image Quality", "image-quality", "Sharpness, blur, noise, exposure and other technical quality."),
    ("Image Description", "image-description", "A faithful, detailed description of everything visible."),
    ("Future Prediction", "future-prediction", "What is likely to happen next, reasoned from what is visible."),
    ("Species Recognition", "species-recognition", "Animals and plants: species, breed and features."),
    ("Image Emotion", "image-emotion", "The mood of the image and the emotions people in it show."),
    ("Numerical Calculation", "numerical-calculation", "Counting, reading numbers and simple arithmetic from the image."),
    ("Spatial Relationship", "spatial-relationship", "Left, right, above, behind, near: how things are arranged in space."),
    ("Commonsense Reasoning", "commonsense-reasoning", "Everyday knowledge applied to what the image shows."),
    ("Meme Comprehension", "meme-comprehension", "The joke or message of a meme, from its picture and text."),
    ("Writing", "writing", "Creative or practical writing grounded in the image (stories, ads, posts)."),
    ("Complex Reasoning", "complex-reasoning", "Multi-step reasoning that combines several details of the image."),
    ("Social Relation", "social-relation", "Relationships between the people shown: family, colleagues, strangers."),
    ("Celebrity Recognition", "celebrity-recognition", "Well-known people, identified only from the image and prior knowledge."),
    (
        "Structured Image-Text Understanding",
        "structured-image-text",
        "Charts, tables, diagrams and documents: reading and reasoning over their structure.",
    ),
]

GUIDELINES = """\
## {name}

{description}

- Check every claim in the caption and the answers against the picture; remove what you cannot see.
- Mark each hallucination with its category (object, attribute, count, text/OCR, spatial relation, other).
- Keep answers short where the type asks for it; do not add facts that are not in the image or its prior knowledge.
"""


def seed(apps, schema_editor):
    Domain = apps.get_model("corpus", "Domain")
    for name, slug, description in DOMAINS:
        Domain.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "guidelines": GUIDELINES.format(name=name, description=description),
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("corpus", "Domain").objects.filter(slug__in=[slug for _, slug, _ in DOMAINS]).delete()


class Migration(migrations.Migration):
    dependencies = [("corpus", "0002_create_role_groups")]
    operations = [migrations.RunPython(seed, unseed)]
