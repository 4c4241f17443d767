"""What the review pages keep in the session: the domains an annotator chose to review (read by the
queue page, the next-image claim, and the studio's home)."""

SESSION_DOMAINS = "review_domains"


def chosen_domain_ids(request) -> list[int]:
    return [int(d) for d in request.session.get(SESSION_DOMAINS, [])]
