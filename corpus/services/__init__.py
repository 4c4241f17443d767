"""Writes of the corpus, split by subject: items (captions and instructions: creation, decide_item —
edits and decisions with the loaded version —, the rules' remembered verdict), review_state (an image's
review state and lease: claim, take, renew, release, finish, new drafts), imports (verifying and storing
images), import_batches (large uploads staged for a worker, and their sweep), near_duplicates (perceptual
hashes), dataset_import (instruction datasets brought in: the job, the command's and the page's path) with
its parts dataset_readers (the formats), dataset_turns (turns typed by the rules), dataset_images (images
found in or brought into the pool) and dataset_writing (COPY, the summary, the writer threads). Callers
import the module they need: `from corpus.services.items import decide_item`."""
