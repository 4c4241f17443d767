"""Writes of the corpus, split by subject: items (captions and instructions: creation, edits with the
loaded version, status moves, the rules' remembered verdict), imports (verifying and storing images),
import_batches (large uploads staged for a worker, and their sweep), near_duplicates (perceptual hashes).
Callers import the module they need: `from corpus.services.items import update_item`."""
