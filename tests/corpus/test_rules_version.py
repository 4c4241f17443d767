"""RULES_VERSION must move when the rules do: exports trust a row's remembered check only under the
version it was made with. The rules are `check_instruction` (its code, not its docstring or comments),
its limits and the text rule's character class; their fingerprint is recorded here."""

import ast
import hashlib
import inspect
import textwrap

from corpus import rules

# RULES_VERSION → fingerprint of the rules it names. When this test fails because you changed the rules:
# raise RULES_VERSION by one and add its fingerprint (printed by the failure) below.
# (1 and 2 were recorded with an earlier way of taking the fingerprint.)
FINGERPRINTS = {1: "1f51ef39574aa503", 2: "fe0fd995e3760928", 3: "5f68136c3f1d3683"}


def fingerprint() -> str:
    limits = [
        rules.MCQ_MIN_OPTIONS,
        rules.MCQ_MAX_OPTIONS,
        rules.OPTION_LABELS,
        rules.JUDGEMENT_ANSWERS,
        rules.SHORT_ANSWER_MAX_WORDS,
        rules.SHORT_ANSWER_MAX_CHARS,
        rules.LONG_ANSWER_MIN_WORDS,
        rules.QUESTION_MAX_CHARS,
        rules.OPTION_MAX_CHARS,
        rules.ANSWER_MAX_CHARS,
        sorted(rules.InstructionType.values),
        rules.CONTROL_CHARACTERS.pattern,
    ]
    function = ast.parse(textwrap.dedent(inspect.getsource(rules.check_instruction))).body[0]
    body = function.body[1:] if isinstance(function.body[0], ast.Expr) else function.body  # no docstring
    code = "".join(ast.dump(statement) for statement in body)
    return hashlib.sha256((code + repr(limits)).encode()).hexdigest()[:16]


def test_the_rules_version_names_the_rules_as_they_are():
    assert FINGERPRINTS.get(rules.RULES_VERSION) == fingerprint(), (
        f"the rules changed: raise corpus.rules.RULES_VERSION and record {fingerprint()!r} for it here"
    )
