"""Pages of the generation app (admins only), by subject: jobs (list and launch, a job's page, its live
progress, pause/resume/cancel), endpoints (list, default, connection test), prompts (versions, edit) and
costs. They parse input, call one service or selector, render; GETs only read (recovery of dead workers'
work is Celery beat's sweep)."""
