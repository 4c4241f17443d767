"""Pages of the corpus, by subject: browse (home, domains, images), imports (upload, batches), media
(stored files behind the role check)."""
