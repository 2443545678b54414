import time

from ml.demo import chunk_bounds, count_primes_in


def run_demo_primes(ctx) -> dict:
    """Counts primes below `limit` chunk by chunk; the running count is the checkpoint, so a restarted job
    continues after the last chunk it stored instead of starting over."""
    limit, chunks, delay = ctx.params["limit"], ctx.params["chunks"], ctx.params["step_delay"]
    bounds = chunk_bounds(limit, chunks)
    state = {"next_chunk": 0, "count": 0, "largest": None, **ctx.checkpoint}
    ctx.progress(state["next_chunk"], total=chunks, message="starting" if not state["next_chunk"] else "resuming")
    for index in range(state["next_chunk"], chunks):
        chunk = count_primes_in(*bounds[index])
        if delay:
            time.sleep(delay)
        state = {
            "next_chunk": index + 1,
            "count": state["count"] + chunk.count,
            "largest": chunk.largest if chunk.largest is not None else state["largest"],
        }
        ctx.progress(index + 1, message=f"chunk {index + 1}/{chunks}: {chunk.count} primes", checkpoint=state)
    return {"limit": limit, "prime_count": state["count"], "largest_prime": state["largest"]}
