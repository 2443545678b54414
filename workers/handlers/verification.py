from spatiallab.verification.models import VerificationQueue
from spatiallab.verification.services import queue_build_finish, queue_build_items, queue_build_total

CHUNK = 10_000


def run_build_queue(ctx) -> dict:
    """Adds the selected pairs of a large queue as items, chunk by chunk in pair-id order, then opens the
    queue. The checkpoint is the last pair id read; inserts skip pairs that are items already, so a resumed or
    repeated run adds nothing twice."""
    queue = VerificationQueue.objects.get(pk=ctx.params["queue"])
    total = queue_build_total(queue=queue)
    after = ctx.checkpoint.get("after", 0)
    done = queue.items.filter(is_gold=False).count()
    ctx.progress(done, total=total, message="resuming" if after else "starting")
    while done < total:
        added, last = queue_build_items(queue=queue, after=after, size=min(CHUNK, total - done))
        if last == after:
            break  # nothing left to read: pairs were deleted since the queue was made
        after, done = last, done + added
        ctx.progress(done, message=f"{done:,} of {total:,} items", checkpoint={"after": after})
    queue_build_finish(queue=queue)
    return {"queue": queue.pk, "items": done}
