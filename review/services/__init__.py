"""Review services, split by subject: transitions (the image state table), queue (claims and leases),
corrections (saves, hallucination marks, added instructions, regeneration), second_pass, stats."""
