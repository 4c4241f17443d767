"""HTML views of the review app: `work` (queue, review page, partials) and `reports` (history, second
pass, statistics)."""

from .reports import disagreements, item_history, second_pass_image, second_pass_queue, stats_page
from .work import (
    add_instruction,
    image_panel,
    item_partial,
    next_image,
    previous_image,
    queue_page,
    regenerate_item,
    reopen_image,
    review_image,
    save_item,
    take_image,
    validate,
)

__all__ = [
    "add_instruction",
    "disagreements",
    "image_panel",
    "item_history",
    "item_partial",
    "next_image",
    "previous_image",
    "queue_page",
    "regenerate_item",
    "reopen_image",
    "review_image",
    "save_item",
    "second_pass_image",
    "second_pass_queue",
    "stats_page",
    "take_image",
    "validate",
]
