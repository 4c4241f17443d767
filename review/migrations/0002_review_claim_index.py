"""An index for the review queue's claim (review/services/queue.py, `pick`).

corpus's image_claim_pending_idx ((domain_id, id) WHERE pending) serves the claim only while the planner
believes it: at random_page_cost = 4 it prefers walking the primary key in id order and filtering, on
the assumption that pending rows are spread evenly — in a queue they are not (the low ids are done), so
that walk reads every reviewed row first. The claim therefore orders by `id + 0`, an order only this
index provides: the primary-key walk is no longer a candidate, at any planner cost setting."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("review", "0001_review_events_marks_second_pass"), ("corpus", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX review_claim_idx ON corpus_image (domain_id, (id + 0)) WHERE review_status = 'pending'",
            reverse_sql="DROP INDEX review_claim_idx",
        ),
    ]
