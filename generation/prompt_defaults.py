"""The default prompt texts shipped with the project (version 1 of each template).

Written for MMInstruct's recipe: a vision model writes a long, faithful caption; a text model, which never
sees the image, turns the caption (plus the domain, what was known before, and seed questions of the
type) into N questions of one type, as JSON. Placeholders are `{{ name }}`; see generation/services/
prompts.py for the list each kind may use. Plain module (no models) so migrations can import it.
"""

CAPTION = """You are describing one image from the domain "{{ domain }}" ({{ domain_description }}) for a \
dataset that teaches a visual assistant. Your description will be the only thing another model sees of \
the image, so it must be complete and it must be true.

What was known about the image before (may be empty): {{ prior_knowledge }}
Text found in the image by OCR (may be empty or noisy): {{ ocr_text }}

Write one detailed caption of at least 150 words (150 to 300 words) that:
- names the main subjects and gives their attributes: colour, shape, size, material, number, state;
- says where things are (left, right, foreground, background, on, under, next to) and how they relate;
- describes the setting, background, lighting and viewpoint;
- quotes any readable text exactly, and uses the OCR text and prior knowledge only where the image \
confirms them;
- for this domain, includes the details an expert would look for.

State only what can be seen. Do not guess at things outside the frame, do not add opinions, do not invent \
details, counts or text. If something is unclear, say that it is unclear. Write plain prose in one to \
three paragraphs, with no headings, lists or preamble.
"""

_INSTRUCTION_HEAD = """You write training data for a visual assistant in the domain "{{ domain }}". You \
cannot see the image; the following caption describes it faithfully and in detail.

<caption>
{{ caption }}
</caption>
What was known about the image before (may be empty): {{ prior_knowledge }}

Write exactly {{ n }} {{ type_name }} questions (type: {{ type }}) about the image.
"""

_INSTRUCTION_TAIL = """
Examples of good questions of this type for this domain (match their style, do not copy them):
{{ seed_questions }}

Every question must be answerable from the caption alone and every answer must agree with it: never ask \
about anything the caption does not state. Ask about "the image" or "the picture", never about "the \
caption" or "the description". Make the questions varied: objects, attributes, counts, positions, text, \
relations and, where the caption allows, simple reasoning. No two questions may be the same.

Answer with JSON only, with no prose and no code fence, in exactly this shape:
{"instructions": [{"question": "…", "options": […], "answer": "…"}]}
"""

INSTRUCTION = {
    "judgement": _INSTRUCTION_HEAD
    + """
Each question is a yes/no question. The answer is exactly "Yes" or "No" and "options" is an empty list.
Balance the answers: about half "Yes" and half "No". A "No" question names something plausible for the \
scene that the caption contradicts (a wrong colour, count, position or object), never something the \
caption simply does not mention.
"""
    + _INSTRUCTION_TAIL,
    "multiple_choice": _INSTRUCTION_HEAD
    + """
Each question has four options (at least 2, at most 6) in "options", written without letters. Exactly \
one option is correct according to the caption; the others are plausible but clearly wrong according \
to it. "answer" is the letter of the correct option: "A" for the first option, "B" for the second, and \
so on. Vary the position of the correct option between questions.
"""
    + _INSTRUCTION_TAIL,
    "long_vqa": _INSTRUCTION_HEAD
    + """
Each question asks for an explanation or a description (what, why, how, describe). Each answer is one \
to four complete sentences, at least 6 words, ending with a full stop, using specific details from the \
caption. "options" is an empty list.
"""
    + _INSTRUCTION_TAIL,
    "short_vqa": _INSTRUCTION_HEAD
    + """
Each question has one short factual answer: a single word, number or short phrase of at most 8 words, \
on one line, without a full sentence. "options" is an empty list.
"""
    + _INSTRUCTION_TAIL,
}

CONVERSATION = """You write training data for a visual assistant in the domain "{{ domain }}": a natural \
multi-round conversation between a user and the assistant about one image. You cannot see the image; the \
following caption describes it faithfully and in detail.

<caption>
{{ caption }}
</caption>
What was known about the image before (may be empty): {{ prior_knowledge }}
Text found in the image by OCR (may be empty or noisy): {{ ocr_text }}

Questions and answers about this image that reviewers have already checked (true, but do not repeat \
them word for word):
{{ instructions }}

Write one conversation of {{ min_turns }} to {{ max_turns }} turns. In each turn the user asks one \
question about the image and the assistant answers it. Later questions build on earlier answers (a \
follow-up, a comparison, a why or how), the way a curious person talks, and the conversation moves from \
what is seen to simple reasoning about it. Ask about "the image" or "the picture", never about "the \
caption" or "the description".

Every answer must agree with the caption and the checked answers: never state anything they do not \
state. If the user asks about something they do not say, the assistant says it cannot tell from the image.

Give each turn one of these types, and make its answer follow the type's rule:
- "long_vqa": an explanation or description; the answer is one to four complete sentences ending with a \
full stop (most turns should be this type);
- "short_vqa": one short factual answer, at most 8 words, on one line;
- "judgement": a yes/no question; the answer is exactly "Yes" or "No";
- "multiple_choice": the question offers 2 to 6 options in "options" (without letters); the answer is \
the letter of the correct one ("A" for the first).
"options" is an empty list for every type but "multiple_choice".

Answer with JSON only, with no prose and no code fence, in exactly this shape:
{"turns": [{"type": "long_vqa", "question": "…", "options": [], "answer": "…"}]}
"""


# The verifier (generation/services/verify.py): a vision model sees the image, the caption and the drafts,
# and judges each draft. {{ instructions }} is one JSON object per line with the item's id.
VERIFY = """You check training data for a visual assistant in the domain "{{ domain }}". Look at the image \
carefully. Below are a caption another model wrote for it and questions with answers a text model wrote \
from that caption without seeing the image.

<caption>
{{ caption }}
</caption>

The items, one JSON object per line (the answer of a multiple-choice item is the letter of its option):
{{ instructions }}

For every item, judge whether its answer is supported by what the image shows (not by the caption alone):
- "supported": the image shows it; the question is answerable and the answer is right;
- "unsupported": the image contradicts it or does not show it (a hallucination); then name the kind: \
"object" (a thing that is not there), "attribute" (a wrong colour, size, material, state), "count" (a \
wrong number), "text" (wrongly read or invented text), "spatial" (a wrong position or relation), or \
"other";
- "unsure": you cannot tell from the image.
Give a one-sentence reason for each.

Answer with JSON only, with no prose and no code fence, in exactly this shape, one verdict per item id:
{"verdicts": [{"id": 1, "verdict": "supported", "reason": "…", "category": ""}]}
"""
