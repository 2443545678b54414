"""Container healthcheck for workers: exits 0 when the broker and the database answer.

`celery inspect ping` is no use here: a GPU worker runs with --pool solo, so while it is busy with a job that
takes hours it cannot answer a ping. Whether the job itself is alive is tracked by its heartbeat in the job
table (the stale-job sweep requeues it when the heartbeat stops).
"""

import sys


def main() -> int:
    import django

    from workers.app import app  # sets DJANGO_SETTINGS_MODULE

    django.setup()
    from django.db import connection

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        sys.stderr.write(f"unhealthy: {exc!r}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
