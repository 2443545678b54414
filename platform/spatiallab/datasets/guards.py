"""Database triggers that make a frozen dataset version immutable whatever code path tries (ORM, raw SQL,
admin, a shell): its entries cannot be inserted, updated or deleted, and its content cannot be updated or the
version deleted. Only the references that other rows' deletion clears (created_by, build_job) may change.
PostgreSQL and SQLite get the same rules (installed by migration 0002)."""

V = "datasets_datasetversion"
E = "datasets_datasetentry"
# Columns of a version that a frozen version keeps forever.
CONTENT = ["name", "description", "parent_id", "criteria", "ratios", "split_salt", "status", "content_hash",
           "entry_count", "card", "readme", "diff", "error", "frozen_at"]

POSTGRES = f"""
CREATE FUNCTION spatiallab_entry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP <> 'INSERT' AND EXISTS (SELECT 1 FROM {V} WHERE id = OLD.version_id AND status = 'frozen'))
       OR (TG_OP <> 'DELETE' AND EXISTS (SELECT 1 FROM {V} WHERE id = NEW.version_id AND status = 'frozen')) THEN
        RAISE EXCEPTION 'dataset version is frozen: its entries cannot change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER datasets_entry_frozen BEFORE INSERT OR UPDATE OR DELETE ON {E}
    FOR EACH ROW EXECUTE FUNCTION spatiallab_entry_guard();

CREATE FUNCTION spatiallab_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'dataset version % is frozen and cannot be deleted', OLD.name
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF ({", ".join(f"OLD.{c}" for c in CONTENT)}) IS DISTINCT FROM ({", ".join(f"NEW.{c}" for c in CONTENT)}) THEN
        RAISE EXCEPTION 'dataset version % is frozen: make a new version instead', OLD.name
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER datasets_version_frozen BEFORE UPDATE OR DELETE ON {V}
    FOR EACH ROW WHEN (OLD.status = 'frozen') EXECUTE FUNCTION spatiallab_version_guard();
"""

POSTGRES_REVERSE = f"""
DROP TRIGGER IF EXISTS datasets_entry_frozen ON {E};
DROP TRIGGER IF EXISTS datasets_version_frozen ON {V};
DROP FUNCTION IF EXISTS spatiallab_entry_guard();
DROP FUNCTION IF EXISTS spatiallab_version_guard();
"""

_FROZEN = f"(SELECT status FROM {V} WHERE id = %s) = 'frozen'"
SQLITE = [
    f"""CREATE TRIGGER datasets_entry_frozen_insert BEFORE INSERT ON {E} WHEN {_FROZEN % "NEW.version_id"}
        BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its entries cannot change'); END""",
    f"""CREATE TRIGGER datasets_entry_frozen_update BEFORE UPDATE ON {E}
        WHEN {_FROZEN % "OLD.version_id"} OR {_FROZEN % "NEW.version_id"}
        BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its entries cannot change'); END""",
    f"""CREATE TRIGGER datasets_entry_frozen_delete BEFORE DELETE ON {E} WHEN {_FROZEN % "OLD.version_id"}
        BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its entries cannot change'); END""",
    f"""CREATE TRIGGER datasets_version_frozen_update BEFORE UPDATE ON {V}
        WHEN OLD.status = 'frozen' AND ({" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CONTENT)})
        BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: make a new version instead'); END""",
    f"""CREATE TRIGGER datasets_version_frozen_delete BEFORE DELETE ON {V} WHEN OLD.status = 'frozen'
        BEGIN SELECT RAISE(ABORT, 'dataset version is frozen and cannot be deleted'); END""",
]
SQLITE_REVERSE = [f"DROP TRIGGER IF EXISTS {name}" for name in (
    "datasets_entry_frozen_insert", "datasets_entry_frozen_update", "datasets_entry_frozen_delete",
    "datasets_version_frozen_update", "datasets_version_frozen_delete")]


def install(schema_editor_or_cursor, vendor: str) -> None:
    for statement in _statements(vendor, POSTGRES, SQLITE):
        schema_editor_or_cursor.execute(statement, None)


def uninstall(schema_editor_or_cursor, vendor: str) -> None:
    for statement in _statements(vendor, POSTGRES_REVERSE, SQLITE_REVERSE):
        schema_editor_or_cursor.execute(statement, None)


def _statements(vendor: str, postgres: str, sqlite: list[str]) -> list[str]:
    if vendor == "postgresql":
        return [postgres]
    if vendor == "sqlite":
        return list(sqlite)
    return []


def purge_for_tests(connection) -> None:
    """Deletes every dataset row, frozen ones included, with the guards lifted for that moment. Only for test
    teardown on SQLite, whose table flush (DELETE FROM) would otherwise be refused by the triggers;
    PostgreSQL's flush truncates, which row triggers do not see."""
    with connection.cursor() as cursor:
        uninstall(cursor, connection.vendor)
        for table in ("datasets_datasetentry", "datasets_datasetexport", "datasets_datasetversion"):
            cursor.execute(f"DELETE FROM {table}")
        install(cursor, connection.vendor)
