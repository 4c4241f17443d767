"""Writes of the corpus, split by subject: items (captions and instructions: creation, decide_item —
edits and decisions with the loaded version —, the rules' remembered verdict), review_state (an image's
review state and lease: claim, take, renew, release, finish, new drafts), imports (verifying and storing
images), import_batches (large uploads staged for a worker, and their sweep), near_duplicates (perceptual
hashes). Callers import the module they need: `from corpus.services.items import decide_item`."""
