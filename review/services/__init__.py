"""Review services, split by subject: queue (the next image, release, the sweep — on the image review
state of corpus.services.review_state), corrections (saves, hallucination marks, added instructions,
regeneration), second_pass, stats. Reads that pages and the API share are in review.selectors."""
