"""The exports app's services, split by subject: specs (specs, versions, status moves), rows (the SQL),
build (snapshot → writers → archive), card (dataset card), diff (between two versions), progress."""
