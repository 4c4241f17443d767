"""Seed questions for the 25 domains: two per instruction type each, written for this project.

They are examples the instruction prompts sample from (one Judgement answered Yes and one No per domain,
so the model sees both); admins edit them on the domain page. Every one obeys corpus/rules.py.
"""

from django.db import migrations

J, M, S, L = "judgement", "multiple_choice", "short_vqa", "long_vqa"

# slug -> list of (type, question, options, answer)
SEEDS = {
    "posters": [
        (J, "Does the poster show the date of the event?", [], "Yes"),
        (J, "Is the title of the film printed at the bottom of the poster?", [], "No"),
        (M, "What kind of event does this poster advertise?", ["A concert", "A film", "A sports match", "A book fair"], "B"),
        (M, "Which colour dominates the background of the poster?", ["Red", "Blue", "Black", "White"], "C"),
        (S, "What is the title written on the poster?", [], "Night Harbour"),
        (S, "How many people are pictured on the poster?", [], "three"),
        (L, "What message is the poster trying to get across to passers-by?", [], "The poster invites people to a summer open-air concert and stresses that entry is free."),
        (L, "How is the layout of the poster organised?", [], "A large photograph fills the top half, and the title and dates sit in a dark band below it."),
    ],
    "image-scene": [
        (J, "Is this scene indoors?", [], "No"),
        (J, "Does the scene take place at night?", [], "Yes"),
        (M, "Where was this photograph most likely taken?", ["A kitchen", "A beach", "A train station", "A forest"], "C"),
        (M, "What is the weather like in the scene?", ["Sunny", "Rainy", "Snowy"], "B"),
        (S, "What type of place is shown?", [], "a street market"),
        (S, "What season does the scene suggest?", [], "winter"),
        (L, "Describe the setting of this scene and what is happening in it.", [], "It is a busy railway platform in the evening, where travellers wait beside a train that has just arrived."),
        (L, "What clues in the image tell you what time of day it is?", [], "The long shadows and the orange light on the buildings suggest that it is late afternoon."),
    ],
    "landmark": [
        (J, "Is the landmark in this picture a natural formation?", [], "No"),
        (J, "Is this landmark located in Europe?", [], "Yes"),
        (M, "Which landmark is shown in the image?", ["The Eiffel Tower", "The Colosseum", "Big Ben", "The Parthenon"], "B"),
        (M, "In which country is this landmark?", ["Japan", "Egypt", "Peru", "Italy"], "B"),
        (S, "What is the name of this landmark?", [], "Golden Gate Bridge"),
        (S, "Which city is this landmark in?", [], "Sydney"),
        (L, "What is this landmark and why is it famous?", [], "It is the Taj Mahal in Agra, a white marble mausoleum famous for its symmetry and its history."),
        (L, "From where was this photograph of the landmark taken?", [], "The photograph was taken from across the river, looking at the cathedral from the south bank."),
    ],
    "brand-recognition": [
        (J, "Is a brand logo visible on the product?", [], "Yes"),
        (J, "Does the shop sign show the name of a car maker?", [], "No"),
        (M, "Which brand makes the shoes in the image?", ["Adidas", "Nike", "Puma", "Reebok"], "A"),
        (M, "What kind of product does the logo belong to?", ["A soft drink", "A phone", "A car", "A clothing line"], "A"),
        (S, "Which brand name is printed on the cup?", [], "Starbucks"),
        (S, "What product category is advertised?", [], "sports shoes"),
        (L, "How can you tell which brand this product comes from?", [], "The three parallel stripes on the side of the shoe are the trademark of that sportswear brand."),
        (L, "Where in the image does the brand appear, and how prominent is it?", [], "The logo appears small in the lower right corner of the bottle label, below the product name."),
    ],
    "artwork": [
        (J, "Is this artwork a sculpture?", [], "No"),
        (J, "Does the painting show a landscape?", [], "Yes"),
        (M, "Which artistic movement does this painting belong to?", ["Cubism", "Impressionism", "Pop art", "Baroque"], "B"),
        (M, "What medium was most likely used for this work?", ["Oil on canvas", "Watercolour", "Charcoal", "Marble"], "A"),
        (S, "Who painted this work?", [], "Vincent van Gogh"),
        (S, "What is the main subject of the painting?", [], "a bowl of fruit"),
        (L, "Describe the composition and the colours of this artwork.", [], "The painting places a seated woman in the centre against a dark background, lit warmly from the left."),
        (L, "What feeling does the artist seem to convey, and how?", [], "Quick brushstrokes and bright yellows give the field a restless, almost joyful energy."),
    ],
    "object-localization": [
        (J, "Is the cup on the left side of the table?", [], "Yes"),
        (J, "Is the dog in the top half of the image?", [], "No"),
        (M, "Where in the image is the bicycle?", ["Top left", "Top right", "Bottom left", "Bottom right"], "D"),
        (M, "Which object is closest to the centre of the image?", ["The lamp", "The book", "The chair"], "B"),
        (S, "In which corner of the image is the clock?", [], "top right"),
        (S, "What object is at the very front of the scene?", [], "a wooden bench"),
        (L, "Describe where each of the main objects is placed in the frame.", [], "The vase stands in the centre, a plate lies to its left, and a folded napkin sits at the bottom edge."),
        (L, "Where exactly is the person standing relative to the door?", [], "The person stands just to the right of the open door, half in the light from the hallway."),
    ],
    "attribute-recognition": [
        (J, "Is the car in the picture red?", [], "No"),
        (J, "Is the table made of wood?", [], "Yes"),
        (M, "What material is the bag made of?", ["Leather", "Plastic", "Glass", "Paper"], "A"),
        (M, "What shape is the window?", ["Square", "Round", "Triangular", "Oval"], "B"),
        (S, "What colour is the umbrella?", [], "yellow"),
        (S, "What pattern does the shirt have?", [], "stripes"),
        (L, "Describe the colour, texture and condition of the main object.", [], "The teapot is glossy white porcelain with a thin gold rim, and a small chip is visible on the spout."),
        (L, "How does the size of the nearest object compare with the others?", [], "The front pumpkin is about twice as large as the two pumpkins sitting behind it."),
    ],
    "ocr": [
        (J, "Does the sign contain the word OPEN?", [], "Yes"),
        (J, "Is any text in the image handwritten?", [], "No"),
        (M, "What number is written on the door?", ["12", "21", "112", "121"], "C"),
        (M, "What is the first word on the menu board?", ["Coffee", "Tea", "Cake", "Soup"], "A"),
        (S, "What does the street sign say?", [], "Baker Street"),
        (S, "What is the price shown on the label?", [], "$4.99"),
        (L, "Transcribe all the text on the notice and explain what it means.", [], "The notice reads \"Closed for renovation until Monday\", so the shop will reopen at the start of next week."),
        (L, "Where does text appear in the image and what does each part say?", [], "The shop name is painted above the window, and a paper sign on the glass gives the opening hours."),
    ],
    "object-relation": [
        (J, "Is the woman holding the umbrella?", [], "Yes"),
        (J, "Is the cat sitting on the sofa?", [], "No"),
        (M, "What is the man doing with the ladder?", ["Carrying it", "Climbing it", "Painting it", "Repairing it"], "B"),
        (M, "What connects the two buildings?", ["A bridge", "A cable", "A tunnel"], "A"),
        (S, "What is the child feeding?", [], "ducks"),
        (S, "What is the laptop resting on?", [], "a pile of books"),
        (L, "How are the people in the image interacting with the objects around them?", [], "One chef slices vegetables on a board while the other stirs a large pot on the stove behind him."),
        (L, "Describe how the animals in the image relate to each other.", [], "The mare stands over her foal, which lies in the grass pressed against her front legs."),
    ],
    "image-comparison": [
        (J, "Do the left and right halves of the image show the same building?", [], "Yes"),
        (J, "Is the person wearing the same jacket in both photos?", [], "No"),
        (M, "What changed between the two pictures?", ["The lighting", "The season", "The camera angle", "Nothing"], "B"),
        (M, "Which of the two apples is larger?", ["The left one", "The right one", "They are the same size"], "A"),
        (S, "How many differences can you find between the panels?", [], "four"),
        (S, "Which panel shows the older photograph?", [], "the left one"),
        (L, "Compare the two scenes and describe their main differences.", [], "The left photo shows the square empty in winter, while the right one shows it crowded during a summer market."),
        (L, "What do the two objects have in common, and how do they differ?", [], "Both are ceramic mugs of the same shape, but one is plain blue and the other has a painted flower."),
    ],
    "image-style": [
        (J, "Is this image a black-and-white photograph?", [], "Yes"),
        (J, "Was this image drawn in a cartoon style?", [], "No"),
        (M, "What style best describes this image?", ["Watercolour", "Pixel art", "Photograph", "Pencil sketch"], "C"),
        (M, "What kind of lighting is used?", ["Soft daylight", "Harsh flash", "Neon", "Candlelight"], "A"),
        (S, "What photographic technique was used?", [], "long exposure"),
        (S, "What medium does the image imitate?", [], "oil painting"),
        (L, "Describe the visual style of the image and how it was achieved.", [], "The image uses a shallow depth of field, so the flower is sharp while the garden behind it is a soft blur."),
        (L, "How do the composition and the colours shape the style of this picture?", [], "A centred subject, muted pastel colours and lots of empty space give the picture a calm, minimal style."),
    ],
    "image-quality": [
        (J, "Is the image blurry?", [], "Yes"),
        (J, "Is the image overexposed?", [], "No"),
        (M, "What is the main quality problem of this image?", ["Motion blur", "Noise", "Overexposure", "None"], "A"),
        (M, "How sharp is the main subject?", ["Very sharp", "Slightly soft", "Completely blurred"], "B"),
        (S, "What causes the streaks in the image?", [], "camera shake"),
        (S, "Rate the image quality from 1 to 5.", [], "2"),
        (L, "Assess the technical quality of this photograph.", [], "The photograph is underexposed, with visible noise in the shadows, although the focus on the face is good."),
        (L, "What could the photographer have done to improve this image?", [], "A faster shutter speed or a tripod would have avoided the motion blur that softens the whole scene."),
    ],
    "image-description": [
        (J, "Is there a person in the image?", [], "Yes"),
        (J, "Does the image contain any vehicles?", [], "No"),
        (M, "Which of these is visible in the image?", ["A tree", "A boat", "A horse", "A bicycle"], "A"),
        (M, "What is the main subject of the image?", ["A building", "A person", "An animal", "A plate of food"], "D"),
        (S, "What is the main object in the image?", [], "a red kite"),
        (S, "What is the person wearing on their head?", [], "a straw hat"),
        (L, "Describe the image in detail.", [], "A young man sits on a stone wall by the sea, reading a paperback, with fishing boats moored behind him."),
        (L, "What is in the foreground and what is in the background?", [], "A basket of oranges fills the foreground, and behind it a market street stretches away out of focus."),
    ],
    "future-prediction": [
        (J, "Is the glass about to fall off the table?", [], "Yes"),
        (J, "Will the traffic light likely turn green for the pedestrians next?", [], "No"),
        (M, "What is the runner most likely to do next?", ["Stop and rest", "Cross the finish line", "Turn back", "Fall"], "B"),
        (M, "What will probably happen to the ice cream soon?", ["It will melt", "It will freeze", "Nothing"], "A"),
        (S, "What is the cook about to add to the pan?", [], "chopped onions"),
        (S, "Where is the bus heading next?", [], "the next stop"),
        (L, "What is likely to happen next in this scene, and why?", [], "The dark clouds and the people opening umbrellas suggest that heavy rain is about to start."),
        (L, "Predict what the child will do next, based on the image.", [], "The child is reaching for the ball with one foot raised, so she will probably kick it towards the goal."),
    ],
    "species-recognition": [
        (J, "Is the animal in the image a mammal?", [], "Yes"),
        (J, "Is the bird in the picture a parrot?", [], "No"),
        (M, "What species is the animal shown?", ["Red fox", "Grey wolf", "Coyote", "Jackal"], "A"),
        (M, "What kind of plant is this?", ["A fern", "A cactus", "A sunflower", "A rose"], "B"),
        (S, "What breed is the dog?", [], "border collie"),
        (S, "What kind of tree is in the picture?", [], "an oak"),
        (L, "Which species is shown and which features identify it?", [], "It is a tabby domestic cat, recognisable by its striped coat, upright ears and the M-shaped mark on its forehead."),
        (L, "Describe the habitat the animal is in.", [], "The heron stands in shallow water at the edge of a reed bed, where it can hunt for small fish."),
    ],
    "image-emotion": [
        (J, "Does the person in the image look happy?", [], "Yes"),
        (J, "Is the mood of this scene tense?", [], "No"),
        (M, "What emotion does the woman's face show?", ["Joy", "Anger", "Surprise", "Sadness"], "C"),
        (M, "What mood do the colours of the picture create?", ["Calm", "Threatening", "Festive"], "A"),
        (S, "How does the child feel?", [], "excited"),
        (S, "What is the overall mood of the image?", [], "peaceful"),
        (L, "What emotions are shown in the image, and how can you tell?", [], "The players hug and shout with raised arms, which shows their joy at scoring the winning goal."),
        (L, "How do the lighting and setting affect the mood?", [], "The dim blue light and the empty street make the scene feel lonely and a little melancholic."),
    ],
    "numerical-calculation": [
        (J, "Are there more than five apples on the plate?", [], "No"),
        (J, "Is the total on the receipt higher than 20 dollars?", [], "Yes"),
        (M, "How many birds are sitting on the wire?", ["3", "4", "5", "6"], "C"),
        (M, "What is the sum of the two numbers written on the board?", ["11", "13", "15", "17"], "B"),
        (S, "How many coins are on the table?", [], "7"),
        (S, "What time does the clock show?", [], "10:15"),
        (L, "Count the people in the image and explain how you counted them.", [], "There are six people: four sit around the table and two stand by the window on the right."),
        (L, "If each ticket costs the price shown, how much do the tickets for the group cost?", [], "Each ticket costs 8 euros and there are five people, so the group pays 40 euros in total."),
    ],
    "spatial-relationship": [
        (J, "Is the lamp to the left of the bed?", [], "No"),
        (J, "Is the ball in front of the goal?", [], "Yes"),
        (M, "Where is the cat relative to the box?", ["Inside it", "On top of it", "Behind it", "Next to it"], "B"),
        (M, "Which object is furthest from the camera?", ["The tree", "The fence", "The house"], "C"),
        (S, "What is under the table?", [], "a sleeping dog"),
        (S, "What is between the two chairs?", [], "a small table"),
        (L, "Describe how the furniture is arranged in the room.", [], "A sofa faces the window, a low table stands in front of it, and a bookshelf covers the wall on the left."),
        (L, "Explain the position of the boats relative to the pier.", [], "Two boats are tied to the end of the pier, and a third is anchored a little further out to the right."),
    ],
    "commonsense-reasoning": [
        (J, "Is it safe to swim here, judging by the sign?", [], "No"),
        (J, "Is the person dressed for cold weather?", [], "Yes"),
        (M, "Why is the man holding an umbrella?", ["It is raining", "It is sunny", "He is selling it", "He is waiting for a bus"], "A"),
        (M, "What is the purpose of the orange cones on the road?", ["Decoration", "Marking roadworks", "A race course"], "B"),
        (S, "What is the woman probably preparing for?", [], "a birthday party"),
        (S, "What should the driver do at this sign?", [], "stop"),
        (L, "Why might the shop be closed, based on what you can see?", [], "The lights are off, the shutters are down and a holiday banner hangs above the door, so it is probably a public holiday."),
        (L, "What would be a sensible thing to do in the situation shown?", [], "Since the milk has spilled near the cable, it would be sensible to unplug the kettle before wiping it up."),
    ],
    "meme-comprehension": [
        (J, "Is the meme making fun of Monday mornings?", [], "Yes"),
        (J, "Is the text of the meme meant literally?", [], "No"),
        (M, "What is the meme mainly joking about?", ["Procrastination", "Sports", "Cooking", "Travel"], "A"),
        (M, "What role does the picture play in the joke?", ["It contradicts the caption", "It illustrates the caption", "It is unrelated"], "A"),
        (S, "What format is this meme based on?", [], "distracted boyfriend"),
        (S, "Who is the target of the joke?", [], "students"),
        (L, "Explain the joke of this meme.", [], "The caption promises a healthy new year, while the picture shows a man hiding a cake, so the joke is about broken resolutions."),
        (L, "Why might some readers find this meme funny?", [], "Anyone who has waited for a slow download will recognise the skeleton waiting at the computer and laugh at the exaggeration."),
    ],
    "writing": [
        (J, "Would this image suit an advertisement for a holiday resort?", [], "Yes"),
        (J, "Does the image contain enough detail to write a recipe?", [], "No"),
        (M, "Which title fits the image best for a short story?", ["The Last Train", "A Day at the Beach", "Space Pirates", "The Silent Library"], "A"),
        (M, "Which tone suits a caption for this photo on social media?", ["Playful", "Formal", "Angry"], "A"),
        (S, "Suggest a title for this picture.", [], "Morning on the Lake"),
        (S, "Give one hashtag for this photo.", [], "#streetfood"),
        (L, "Write a short advertisement for the product in the image.", [], "Start every morning right with our hand-roasted coffee, rich, smooth and ready in a minute."),
        (L, "Write the first two sentences of a story inspired by this image.", [], "The lighthouse had been dark for ten years. Then, one stormy night, Mara saw its lamp flicker on."),
    ],
    "complex-reasoning": [
        (J, "Could the two people in the image have arrived together by the bicycle shown?", [], "No"),
        (J, "Given the shadows and the open shops, is it likely to be daytime?", [], "Yes"),
        (M, "Based on the clues in the image, what is the man's job?", ["Chef", "Firefighter", "Teacher", "Pilot"], "B"),
        (M, "Which explanation best fits all the details in the scene?", ["A wedding", "A house move", "A birthday party", "A market day"], "B"),
        (S, "Which team is most likely winning?", [], "the team in blue"),
        (S, "What caused the puddle on the floor?", [], "the leaking pipe"),
        (L, "Using several details of the image, explain what happened just before it was taken.", [], "The broken vase, the wet floor and the guilty-looking dog suggest that the dog knocked the vase off the table."),
        (L, "What can you infer about the place from the objects and people in it?", [], "The whiteboards, lab coats and microscopes suggest a university laboratory during a practical class."),
    ],
    "social-relation": [
        (J, "Do the people in the image appear to be a family?", [], "Yes"),
        (J, "Are the two men in the picture strangers to each other?", [], "No"),
        (M, "What is the most likely relationship between the two people?", ["Colleagues", "Siblings", "Teacher and student", "Strangers"], "C"),
        (M, "What kind of gathering is shown?", ["A business meeting", "A family dinner", "A protest"], "B"),
        (S, "Who is the leader of the group?", [], "the woman in red"),
        (S, "What is the relationship between the adult and the child?", [], "parent and child"),
        (L, "Describe the relationships between the people in the image and how you can tell.", [], "The older couple hold hands and the children cling to them, which suggests grandparents visiting their grandchildren."),
        (L, "How do the people's positions and gestures show their relationship?", [], "The manager stands at the head of the table while the others face him and take notes, so he is leading the meeting."),
    ],
    "celebrity-recognition": [
        (J, "Is the person in the image a professional athlete?", [], "No"),
        (J, "Is the person shown an astronaut?", [], "Yes"),
        (M, "What is the person in the image best known as?", ["An actor", "A singer", "A politician", "An astronaut"], "D"),
        (M, "Where was this photograph most likely taken?", ["At a film premiere", "At a press conference", "At a football match"], "B"),
        (S, "What is the person in the image known for?", [], "space flight"),
        (S, "What uniform is the person wearing?", [], "a NASA flight suit"),
        (L, "Who is the person in the image and what clues support your answer?", [], "The orange flight suit, the mission patch and the flag behind her suggest an official NASA astronaut portrait."),
        (L, "What is the occasion of this photograph?", [], "The person is posing for an official portrait in front of a flag, of the kind taken before a mission."),
    ],
    "structured-image-text": [
        (J, "Does the chart show an increase over the years?", [], "Yes"),
        (J, "Does the table have more than four columns?", [], "No"),
        (M, "Which category has the largest bar in the chart?", ["Food", "Rent", "Transport", "Leisure"], "B"),
        (M, "What kind of diagram is shown?", ["A flowchart", "A pie chart", "A map", "A timeline"], "A"),
        (S, "What is the value for March in the table?", [], "42"),
        (S, "What is the title of the chart?", [], "Monthly rainfall"),
        (L, "Summarise what the chart shows.", [], "The line chart shows monthly sales rising steadily from January and peaking in August before falling again."),
        (L, "Explain the steps of the process shown in the diagram.", [], "The diagram starts with collecting data, then cleaning it, training a model and finally evaluating the results."),
    ],
}


def seed(apps, schema_editor):
    Domain = apps.get_model("corpus", "Domain")
    SeedQuestion = apps.get_model("corpus", "SeedQuestion")
    for domain in Domain.objects.filter(slug__in=SEEDS):
        if SeedQuestion.objects.filter(domain=domain).exists():
            continue  # an admin already wrote seed questions here; never overwrite them
        SeedQuestion.objects.bulk_create(
            SeedQuestion(domain=domain, type=t, question=q, options=list(o), answer=a)
            for t, q, o, a in SEEDS[domain.slug]
        )


def unseed(apps, schema_editor):
    SeedQuestion = apps.get_model("corpus", "SeedQuestion")
    for slug, rows in SEEDS.items():
        for t, q, _o, _a in rows:
            SeedQuestion.objects.filter(domain__slug=slug, type=t, question=q).delete()


class Migration(migrations.Migration):
    dependencies = [("corpus", "0003_seed_domains")]
    operations = [migrations.RunPython(seed, unseed)]
