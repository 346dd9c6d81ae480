"""The Alembic migrations create exactly the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import Base


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_the_models(backend: str, request: pytest.FixtureRequest) -> None:
    store = SqlEventStore.create(request.getfixturevalue(f"{backend}_url"))  # new, at head
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        store.close()
    assert differences == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_patient_timeline_is_filled_in_from_the_log(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """A store written before revision 0006 gets its patients' consent, death and fatal AE."""
    from alembic import command
    from trial_builder import NEUTROPENIA, Trial

    from safety_stream.store.migrate import alembic_config, upgrade

    url = request.getfixturevalue(f"{backend}_url")
    trial = Trial()
    trial.enrol("P1", 0)
    fatal = trial.ae("P1", 5, *NEUTROPENIA, 5, ct="probable")
    trial.add("patient.died", "P1", 6, death_date=trial.events[-1].onset_date.isoformat(),  # type: ignore[attr-defined]
              primary_cause="sepsis", related_ae_id=fatal)  # fmt: skip
    trial.enrol("P2", 1)
    store = SqlEventStore.create(url)
    try:
        with store.write() as session:
            for event in trial.events:
                session.append(event)
        command.downgrade(alembic_config(store.engine), "0005")  # the index as it was
        upgrade(store.engine)  # ... filled in again from the log
        with store.write() as session:
            died, alive = session.patient_facts("P1"), session.patient_facts("P2")
    finally:
        store.close()
    assert died is not None and alive is not None
    assert (str(died.fatal_ae_id), died.death_date) == (fatal, trial.events[2].death_date)  # type: ignore[attr-defined]
    assert died.consent_date == trial.events[0].consent_date  # type: ignore[attr-defined]
    assert (alive.consent_date, alive.death_date, alive.fatal_ae_id) == (
        trial.events[3].consent_date, None, None,  # type: ignore[attr-defined]
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_starting_together_on_a_fresh_store_all_migrate_it(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """As compose starts the API and two workers on one new database: one migrates under the
    lock, the others wait and find the schema at head (none fails on a duplicate key)."""
    import subprocess
    import sys
    from pathlib import Path

    url = request.getfixturevalue(f"{backend}_url")
    executable = str(Path(sys.executable).with_name("safety-stream"))
    started = [
        subprocess.Popen(
            [executable, "migrate", "--db", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in started]
    assert [process.returncode for process in started] == [0, 0, 0, 0], outputs
    store = SqlEventStore.open(url)
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() is not None
            assert compare_metadata(context, Base.metadata) == []
    finally:
        store.close()
