"""RULES_VERSION must move when the rules do: exports trust a row's remembered check only under the
version it was made with. The rules are `_check_instruction_full` and its limits (the fast path in
check_instruction is held to them by test_rules_equivalence.py); their fingerprint is recorded here."""

import hashlib
import inspect

from corpus import rules

# RULES_VERSION → fingerprint of the rules it names. When this test fails because you changed the rules:
# raise RULES_VERSION by one and add its fingerprint (printed by the failure) below.
FINGERPRINTS = {1: "1f51ef39574aa503", 2: "fe0fd995e3760928"}


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
    ]
    source = inspect.getsource(rules._check_instruction_full)
    return hashlib.sha256((source + repr(limits)).encode()).hexdigest()[:16]


def test_the_rules_version_names_the_rules_as_they_are():
    assert FINGERPRINTS.get(rules.RULES_VERSION) == fingerprint(), (
        f"the rules changed: raise corpus.rules.RULES_VERSION and record {fingerprint()!r} for it here"
    )
