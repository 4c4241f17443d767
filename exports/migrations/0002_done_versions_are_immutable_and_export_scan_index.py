"""A database guard that a done export version is never rewritten, and the index the export scan reads.

Both are raw SQL because Django has no model-level way to say either; each has a reverse.
"""

from django.db import migrations

PG_TRIGGER = """
CREATE OR REPLACE FUNCTION exports_version_done_is_immutable() RETURNS trigger AS $$
BEGIN
    -- Who built it may be set to NULL when that user is deleted; nothing that names the content may move.
    IF OLD.status = 'done' AND (NEW.status, NEW.spec_id, NEW.number, NEW.file_path, NEW.size_bytes, NEW.sha256,
                                NEW.counts, NEW.manifest)
            IS DISTINCT FROM (OLD.status, OLD.spec_id, OLD.number, OLD.file_path, OLD.size_bytes, OLD.sha256,
                              OLD.counts, OLD.manifest) THEN
        RAISE EXCEPTION 'export version %% is done and immutable', OLD.id;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER exports_version_done_is_immutable
    BEFORE UPDATE ON exports_exportversion
    FOR EACH ROW EXECUTE FUNCTION exports_version_done_is_immutable();
"""
PG_TRIGGER_REVERSE = """
DROP TRIGGER IF EXISTS exports_version_done_is_immutable ON exports_exportversion;
DROP FUNCTION IF EXISTS exports_version_done_is_immutable();
"""
SQLITE_TRIGGER = """
CREATE TRIGGER exports_version_done_is_immutable
BEFORE UPDATE ON exports_exportversion
WHEN OLD.status = 'done' AND (NEW.status IS NOT OLD.status OR NEW.spec_id IS NOT OLD.spec_id
    OR NEW.number IS NOT OLD.number OR NEW.file_path IS NOT OLD.file_path
    OR NEW.size_bytes IS NOT OLD.size_bytes OR NEW.sha256 IS NOT OLD.sha256
    OR NEW.counts IS NOT OLD.counts OR NEW.manifest IS NOT OLD.manifest)
BEGIN
    SELECT RAISE(ABORT, 'export version is done and immutable');
END;
"""
SQLITE_TRIGGER_REVERSE = "DROP TRIGGER IF EXISTS exports_version_done_is_immutable;"

# Serves the export scan `WHERE i.status = 'accepted' … ORDER BY i.image_id, i.id` (exports/services/
# rows.py): read in index order, no sort of a million wide rows. corpus owns the table; the index lives
# here because only the export reads in this order.
INDEX = (
    "CREATE INDEX IF NOT EXISTS exports_instruction_status_image_id_idx "
    "ON corpus_instruction (status, image_id, id)"
)
INDEX_REVERSE = "DROP INDEX IF EXISTS exports_instruction_status_image_id_idx"


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_TRIGGER)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER)
    schema_editor.execute(INDEX)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_TRIGGER_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER_REVERSE)
    schema_editor.execute(INDEX_REVERSE)


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0001_initial"),
        ("corpus", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
