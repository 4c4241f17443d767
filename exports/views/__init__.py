"""Pages of the exports app, by subject: specs (the list of exports, a new export, building the next
version) and versions (a version with its live progress, its download, a diff between two versions).
They call exports.services for writes and exports.selectors for reads; a domain error they let through
becomes an error page with the status API_ERROR_STATUS gives it (exports.views.common)."""
