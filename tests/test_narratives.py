"""Narratives of serious AEs and deaths, assembled from a history posted through the production
path: they state the facts of that history (dates, grades, attribution changes, labs within 14
days, the death's cause and days from the last dose), nothing invented and no other patient's
data; the same history gives the same words."""

from __future__ import annotations

import re

from liver_histories import S1, competing_trial, day
from test_read_snapshot import ADMIN, submit
from trial_builder import DIARRHEA, Trial

from safety_stream.review.narratives import Narrative, narratives
from safety_stream.runtime import build_memory_runtime

OTHERS = re.compile(r"\bPT-[1-7]\b")


def build() -> tuple[list[Narrative], dict[str, str]]:
    runtime = build_memory_runtime()
    trial, ids = competing_trial()
    submit(runtime, trial)
    found = runtime.review.read(ADMIN, narratives)
    runtime.close()
    return found, ids


def test_one_narrative_per_serious_ae_and_per_death_in_order() -> None:
    found, ids = build()
    # serious: PT-3 (onset day 4), PT-2 (day 6), PT-7 (day 21); deaths PT-4, PT-7 (day 21)
    assert [(n.kind, n.patient_id) for n in found] == [
        ("sae", "PT-3"), ("sae", "PT-2"), ("sae", "PT-7"), ("death", "PT-4"), ("death", "PT-7"),
    ]  # fmt: skip
    assert [n.ae_id for n in found[:3]] == [ids["PT-3"], ids["PT-2"], ids["PT-7"]]


def test_a_serious_ae_narrative_tells_its_history() -> None:
    found, ids = build()
    pt2 = next(n for n in found if n.patient_id == "PT-2")
    text = pt2.text
    assert pt2.title == f"Serious AE {ids['PT-2']}: Diarrhea, patient PT-2 (site {S1})"
    assert f"Enrolled (consent) {day(0)}" in text
    assert f"immunotherapy: 1 administration, first {day(1)}, last {day(1)}" in text
    assert f"onset {day(6)}, reported on {day(6)} at grade 2 by test" in text
    assert "seriousness criteria at report: hospitalisation" in text
    assert "Attribution at report: radiotherapy unrelated, chemotherapy unrelated, " in text
    assert f"On {day(9)} test recorded: grade 2 -> 3 (worsened) (reason: review)." in text
    assert "Now: grade 3 (course 2 -> 3; worst 3)" in text
    assert "action taken with study treatment: dose not changed; ongoing" in text
    # the ALT of day 8 is within 14 days of the onset (day 6); the one of day 30 is not
    assert f"{day(8)} ALT 80 U/L = 2.00 x ULN, grade 1" in text
    assert day(30) not in text
    assert not set(OTHERS.findall(text)) - {"PT-2"}
    for word in ("age", "years old", "male", "female"):
        assert not re.search(rf"\b{word}\b", text)


def test_an_attribution_change_is_told_with_its_date() -> None:
    found, _ = build()
    pt3 = next(n for n in found if n.patient_id == "PT-3").text
    assert "Attribution at report: radiotherapy unrelated, chemotherapy unrelated, " in pt3
    assert (
        f"On {day(8)} test recorded: attribution changed: chemotherapy unrelated -> probable "
        "(reason: review)." in pt3
    )
    assert "Now: grade 3 (course 3; worst 3); seriousness hospitalisation; attribution " in pt3
    assert "chemotherapy probable" in pt3
    assert not set(OTHERS.findall(pt3)) - {"PT-3"}


def test_a_death_narrative_gives_the_cause_and_days_from_the_last_dose() -> None:
    found, ids = build()
    pt4 = next(n for n in found if n.kind == "death" and n.patient_id == "PT-4").text
    assert f"Died {day(21)}; primary cause: disease progression." in pt4
    assert "Died 20 days after the last chemotherapy." in pt4
    # its grade 3 neutropenia was retracted: not listed
    assert "Grade >= 3 AEs of this patient: none." in pt4
    assert ids["PT-4"] not in pt4
    pt7 = next(n for n in found if n.kind == "death" and n.patient_id == "PT-7").text
    assert f"Died {day(21)}; primary cause: sepsis." in pt7
    assert f"Diarrhea grade 3, onset {day(21)}, attribution radiotherapy unrelated, " in pt7
    assert not set(OTHERS.findall(pt4 + pt7)) - {"PT-4", "PT-7"}
    # the serious AE of a patient who died says so too
    sae7 = next(n for n in found if n.kind == "sae" and n.patient_id == "PT-7").text
    assert "Died 20 days after the last chemotherapy." in sae7


def test_the_same_history_gives_the_same_words() -> None:
    first, _ = build()
    second, _ = build()

    # event ids differ between the two builds: compare the text without them
    def plain(found: list[Narrative]) -> list[str]:
        return [re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "ID", n.text) for n in found]

    assert plain(first) == plain(second)


def test_a_fatal_ae_cited_by_the_death_is_named() -> None:
    runtime = build_memory_runtime()
    trial = Trial()
    trial.enrol("PF-1", 0)
    trial.treat("PF-1", "immunotherapy", 1)
    fatal = trial.ae("PF-1", 10, *DIARRHEA, 5, it="probable", seriousness=["death"])
    trial.add("patient.died", "PF-1", 10, death_date=day(10), primary_cause="colitis",
              related_ae_id=fatal)  # fmt: skip
    submit(runtime, trial)
    found = runtime.review.read(ADMIN, narratives)
    death = next(n for n in found if n.kind == "death").text
    assert f"The death report cites the fatal AE Diarrhea ({fatal})." in death
    assert "Died 9 days after the last immunotherapy." in death
    runtime.close()


def test_a_dose_dated_after_the_death_is_not_the_last_dose_before_it() -> None:
    """A death reported late, dated before a dose already recorded: days from the last dose
    are counted from the last dose on or before the death (as the deaths table does), never
    negative."""
    runtime = build_memory_runtime()
    trial = Trial()
    trial.enrol("PL-1", 0)
    trial.treat("PL-1", "chemotherapy", 1)
    trial.treat("PL-1", "immunotherapy", 1)
    trial.treat("PL-1", "chemotherapy", 15)
    trial.treat("PL-1", "immunotherapy", 15)
    trial.add("patient.died", "PL-1", 16, death_date=day(12), primary_cause="sepsis")
    submit(runtime, trial)
    found = runtime.review.read(ADMIN, narratives)
    death = next(n for n in found if n.kind == "death").text
    assert (
        "Died 11 days after the last chemotherapy, 11 days after the last immunotherapy." in death
    )
    assert "-3 days" not in death
    runtime.close()
