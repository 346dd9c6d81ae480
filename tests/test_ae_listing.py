"""The AE listing's filter (a pure function of the review dataset) on a hand-computed case, and
the patient timeline SVG: valid XML, deterministic, escaped, one mark per record."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

from trial_builder import DIARRHEA, NAUSEA, NEUTROPENIA, Trial

from safety_stream.events import Attribution
from safety_stream.plots import TimelineAe, TimelineInput, patient_timeline
from safety_stream.review.dataset import ReviewData
from safety_stream.review.listing import AeFilter, page, select

STORED = datetime(2026, 3, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def folded(trial: Trial) -> ReviewData:
    """The trial folded as the store would number it: position i, stored i minutes later."""
    data = ReviewData()
    for position, event in enumerate(trial.events, 1):
        data.fold(event, position, STORED + timedelta(minutes=position), f"h{position}")
    return data


def small() -> tuple[ReviewData, dict[str, str]]:
    """By hand: a (S1, P1): neutropenia G3 chemo possible, worsened to 4 on day 9 (position 6);
    b (S1, P1): nausea G1 unrelated, retracted; c (S2, P2): diarrhoea G2 immuno probable, irAE."""
    trial = Trial()
    trial.enrol("P1", 0)  # 1
    trial.enrol("P2", 0, "S2")  # 2
    a = trial.ae("P1", 5, *NEUTROPENIA, 3, ct="possible")  # 3
    b = trial.ae("P1", 6, *NAUSEA, 1)  # 4
    c = trial.ae("P2", 7, *DIARRHEA, 2, it="probable", site="S2", immune_related=True)  # 5
    trial.update("P1", 9, a, grade=4, grade_change="worsened")  # 6
    trial.retract("P1", 10, b)  # 7
    return folded(trial), {"a": a, "b": b, "c": c}


def ids(data: ReviewData, chosen: AeFilter) -> list[str]:
    return [str(x.ae.ae_id) for x in select(data, chosen)]


def test_the_filters_on_a_hand_computed_case() -> None:
    data, ae = small()
    assert ids(data, AeFilter()) == [ae["a"], ae["c"]]  # b retracted: only when asked
    assert [x.number for x in select(data, AeFilter())] == [1, 3]
    assert ids(data, AeFilter(status="retracted")) == [ae["b"]]
    assert ids(data, AeFilter(site="S2")) == [ae["c"]]
    assert ids(data, AeFilter(min_grade=4)) == [ae["a"]]  # worsened to 4
    assert ids(data, AeFilter(min_worst_grade=3)) == [ae["a"]]
    possible = Attribution.POSSIBLE
    assert ids(data, AeFilter(modality="chemotherapy", attribution=possible)) == [ae["a"]]
    assert ids(data, AeFilter(modality="chemotherapy", attribution=Attribution.PROBABLE)) == []
    assert ids(data, AeFilter(attribution=Attribution.PROBABLE)) == [ae["c"]]  # any modality
    assert ids(data, AeFilter(immune_related=True)) == [ae["c"]]
    assert ids(data, AeFilter(soc="INVESTIGATIONS")) == [ae["a"]]
    assert ids(data, AeFilter(term="diarrhea")) == [ae["c"]]
    assert ids(data, AeFilter(serious=True)) == []
    assert ids(data, AeFilter(onset_from=date(2026, 1, 7))) == [ae["c"]]  # day 6 = Jan 7
    assert ids(data, AeFilter(onset_to=date(2026, 1, 6))) == [ae["a"]]
    assert ids(data, AeFilter(changed_since_position=5)) == [ae["a"]]  # amended at 6
    assert ids(data, AeFilter(changed_since_time=STORED + timedelta(minutes=5))) == [ae["a"]]
    only_c = AeFilter(ae_ids=frozenset({select(data, AeFilter())[1].ae.ae_id}))
    assert ids(data, only_c) == [ae["c"]]


def test_pages_cut_at_the_number() -> None:
    data, _ = small()
    found = select(data, AeFilter(status=None))
    assert [x.number for x in page(found, 0, 1)] == [1]
    assert [x.number for x in page(found, 1, 5)] == [3]
    assert page(found, 3, 5) == []


def test_a_site_numbers_its_own_aes() -> None:
    data, _ = small()
    assert [x.number for x in select(data.for_site("S2"), AeFilter())] == [1]


def timeline() -> TimelineInput:
    day = date(2026, 1, 1)
    return TimelineInput(
        enrolled=day,
        administrations=[
            ("radiotherapy", day + timedelta(days=2), False),
            ("chemotherapy", day + timedelta(days=3), False),
            ("chemotherapy", day + timedelta(days=17), True),
        ],
        aes=[
            TimelineAe(
                "Diarrhea <&> G3",
                3,
                day + timedelta(days=6),
                day + timedelta(days=12),
                "chemotherapy probable",
                "/board/aes/x?a=1&b=2",
            ),
            TimelineAe("Nausea G1", 1, day + timedelta(days=8), None, ""),
        ],
        labs=[
            ("ALT", day + timedelta(days=4), 3.5),
            ("ALT", day + timedelta(days=20), 1.2),
            ("bilirubin_total", day + timedelta(days=4), 0.8),
            ("INR", day, 1.1),
        ],
        child_pugh=[(day + timedelta(days=5), 6, "A")],
        exit=("withdrawn", day + timedelta(days=30)),
        last_day=day + timedelta(days=30),
    )


def test_the_timeline_is_valid_deterministic_escaped_svg() -> None:
    svg = patient_timeline(timeline(), title='Patient "P<1>"')
    assert svg == patient_timeline(timeline(), title='Patient "P<1>"')
    root = ET.fromstring(svg)  # valid XML (raises otherwise)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.findtext(f"{SVG}title") == 'Patient "P<1>"'
    doses = root.findall(f".//{SVG}line[@class='dose']")
    assert len(doses) == 3 and doses[2].get("stroke-dasharray") == "2 2"  # the reduced dose
    bars = root.findall(f".//{SVG}rect")
    assert [b.get("class") for b in bars if (b.get("class") or "").startswith("ae")] == [
        "ae grade-3", "ae grade-1"
    ]  # fmt: skip
    link = root.find(f".//{SVG}a")
    assert link is not None and link.get("href") == "/board/aes/x?a=1&b=2"
    assert len(root.findall(f".//{SVG}polyline[@class='lab']")) == 2  # ALT, bilirubin; not INR
    texts = "".join(root.itertext())
    assert "Diarrhea <&> G3" in texts and "A6" in texts and "chemotherapy probable" in texts
    assert root.find(f".//{SVG}path[@class='exit']") is not None
    assert root.find(f".//{SVG}path[@class='enrolled']") is not None


def test_an_ongoing_ae_runs_to_the_last_day_and_bars_are_in_time_order() -> None:
    svg = ET.fromstring(patient_timeline(timeline(), title="t"))
    ended, ongoing = (r for r in svg.iter(f"{SVG}rect") if (r.get("class") or "").startswith("ae"))
    # the axis runs from day 0 to day 30 (31 days): the ongoing bar ends where the axis ends
    right = float(ongoing.get("x") or 0) + float(ongoing.get("width") or 0)
    assert abs(right - (230 + (980 - 230 - 20) * 30 / 31)) < 0.2
    assert float(ended.get("x") or 0) < float(ongoing.get("x") or 0)


def test_the_profiles_timeline_shows_a_death_over_a_later_withdrawal_record() -> None:
    from safety_stream.application.drilldown import PatientProfileRead
    from safety_stream.board.review_pages import timeline_input
    from safety_stream.review.details import Exit

    died = Exit("died", date(2026, 2, 1), 9, None, "progression")
    profile = PatientProfileRead(
        patient_id="P1", site_id="S1", status="withdrawn", enrolled_at=None,
        consent_date=date(2026, 1, 1), planned_modalities=(), administrations=(), labs=(),
        child_pugh=(), exit=Exit("withdrawn", date(2026, 2, 3), 10, "other"), death=died,
        last_data_on=date(2026, 2, 3), aes=(),
    )  # fmt: skip
    drawn = timeline_input(profile, date(2026, 3, 1), Attribution.POSSIBLE)
    assert drawn.exit == ("died", date(2026, 2, 1)) and drawn.enrolled == date(2026, 1, 1)
    assert drawn.last_day == date(2026, 2, 3)
