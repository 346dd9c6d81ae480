"""Narratives for serious AEs and deaths, assembled from the event history.

Plain, deterministic text (the same history gives the same words) built only from what the log
holds: enrolment, every administration of each modality, the AE as reported and each
amendment with the date the site recorded it (grade course, seriousness, attribution per
modality and its changes), the action taken, the outcome, the liver labs within 14 days of
the onset (or of the death), and for a death its cause and the days since the last dose of each
modality on or before the date of death (as ``deaths``: a dose dated later is not counted). The
patient is named only by the trial's pseudonymous id (for the closed report and the board, never
the open report); age and other demographics are not in the log and are not
invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from safety_stream.events import Modality
from safety_stream.projections.state import AeState
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import AeDetail, AeVersion, PatientDetail
from safety_stream.review.liver import LIVER_TESTS, TEST_LABELS, ctcae_grade

LAB_DAYS = 14
MODALITY_ORDER = tuple(m.value for m in Modality)
ABBREVIATIONS = {"radiotherapy": "RT", "chemotherapy": "CT", "immunotherapy": "IT"}


@dataclass(frozen=True, slots=True)
class Narrative:
    kind: str  # sae | death
    patient_id: str
    site_id: str
    ae_id: str | None
    title: str
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join((self.title, *self.paragraphs))


def _words(value: str) -> str:
    return value.replace("_", " ")


def _attribution(attribution: dict[str, str]) -> str:
    return ", ".join(f"{m} {_words(attribution[m])}" for m in MODALITY_ORDER if m in attribution)


def treatment_paragraph(patient: PatientDetail) -> str:
    """Enrolment and what each modality gave, with first and last dates and counts."""
    enrolled = patient.consent_date.isoformat() if patient.consent_date else "not recorded"
    planned = ", ".join(patient.planned_modalities) or "not recorded"
    parts = [f"Enrolled (consent) {enrolled}; planned modalities: {planned}."]
    given = []
    for modality in MODALITY_ORDER:
        doses = sorted(a.given_at for a in patient.administrations if a.modality == modality)
        if doses:
            unit = "fraction" if modality == "radiotherapy" else "administration"
            plural = "" if len(doses) == 1 else "s"
            given.append(
                f"{modality}: {len(doses)} {unit}{plural}, first {doses[0].date().isoformat()}, "
                f"last {doses[-1].date().isoformat()}"
            )
    parts.append(
        "Treatment received: " + "; ".join(given) + "." if given else "No treatment recorded."
    )
    return " ".join(parts)


def _version_sentence(version: AeVersion, previous: dict[str, Any]) -> str | None:
    """What one amendment changed, in words (None: nothing a reader needs here)."""
    changes, said = version.changes, []
    on = version.recorded_at.date().isoformat()
    if "grade" in changes:
        how = changes.get("grade_change", "corrected")
        said.append(f"grade {previous.get('grade')} -> {changes['grade']} ({_words(how)})")
    if "seriousness" in changes:
        criteria = ", ".join(_words(s) for s in changes["seriousness"]) or "none"
        said.append(f"seriousness criteria now {criteria}")
    if "attribution" in changes and changes["attribution"] != previous.get("attribution"):
        old, new = previous.get("attribution", {}), changes["attribution"]
        moved = [
            f"{m} {_words(old.get(m, '?'))} -> {_words(new[m])}"
            for m in MODALITY_ORDER
            if m in new and new[m] != old.get(m)
        ]
        said.append("attribution changed: " + ", ".join(moved))
    if "expectedness" in changes:
        said.append(f"expectedness {changes['expectedness']}")
    if "outcome" in changes:
        ended = changes.get("end_date")
        said.append(f"resolved, outcome {_words(changes['outcome'])}, end date {ended}")
    if version.event_type == "ae.safety_report_submitted":
        said.append(f"expedited safety report submitted ({changes.get('report_reference')})")
    if version.event_type == "ae.retracted":
        said.append("retracted")
    if not said:
        return None
    reason = f" (reason: {version.reason})" if version.reason else ""
    return f"On {on} {version.reporter} recorded: {'; '.join(said)}{reason}."


def course_paragraph(ae: AeState, detail: AeDetail) -> str:
    """The AE as reported, then each amendment in log order."""
    first = detail.history[0].changes
    serious = ", ".join(_words(s) for s in first.get("seriousness", [])) or "none"
    verbatim = f", verbatim '{detail.verbatim_term}'" if detail.verbatim_term else ""
    sentences = [
        f"{ae.ctcae_term} ({ae.soc}; MedDRA {detail.meddra_code}{verbatim}), onset "
        f"{ae.onset_date.isoformat()}, reported on "
        f"{detail.history[0].recorded_at.date().isoformat()} at grade {first.get('grade')} "
        f"by {detail.history[0].reporter}; seriousness criteria at report: {serious}; "
        f"{first.get('expectedness', 'expectedness not given')}; immune-related: "
        f"{'yes' if first.get('immune_related') else 'no'}.",
        f"Attribution at report: {_attribution(first.get('attribution', {}))}.",
    ]
    state: dict[str, Any] = dict(first)
    for version in detail.history[1:]:
        sentence = _version_sentence(version, state)
        if sentence:
            sentences.append(sentence)
        state.update(version.changes)
    return " ".join(sentences)


def status_paragraph(ae: AeState, detail: AeDetail) -> str:
    course = " -> ".join(str(g) for g in (ae.course or [ae.grade]))
    ended = (
        f"resolved {ae.end_date or 'date not given'}, outcome {_words(ae.outcome or 'not given')}"
        if ae.status == "resolved"
        else "ongoing at the data cut-off"
    )
    return (
        f"Now: grade {ae.grade} (course {course}; worst {ae.worst}); seriousness "
        f"{', '.join(_words(s) for s in ae.seriousness) or 'none'}; attribution "
        f"{_attribution(ae.attribution)}; action taken with study treatment: "
        f"{_words(detail.action_taken)}; {ended}."
    )


def labs_paragraph(patient: PatientDetail, around: date) -> str:
    """Liver labs collected within 14 days either side of ``around``, with their grade."""
    low, high = around - timedelta(days=LAB_DAYS), around + timedelta(days=LAB_DAYS)
    near = sorted(
        (v for v in patient.labs if v.test in LIVER_TESTS and low <= v.collected_at.date() <= high),
        key=lambda v: (v.collected_at, v.position),
    )
    if not near:
        return f"Liver labs within {LAB_DAYS} days: none recorded."
    said = []
    for v in near:
        ratio = v.times_uln
        graded = (
            "" if ratio is None else f" = {ratio:.2f} x ULN, grade {ctcae_grade(v.test, ratio)}"
        )
        said.append(
            f"{v.collected_at.date().isoformat()} {TEST_LABELS[v.test]} {v.value:g} {v.unit}"
            f"{graded}"
        )
    return f"Liver labs within {LAB_DAYS} days: " + "; ".join(said) + "."


def death_paragraph(patient: PatientDetail, data: ReviewData) -> str:
    death = patient.death
    assert death is not None
    said = [f"Died {death.on.isoformat()}; primary cause: {death.details or 'not given'}."]
    if death.related_ae_id is not None:
        cited = data.ae(death.related_ae_id)
        term = cited[0].ctcae_term if cited else "an AE not in this view"
        said.append(f"The death report cites the fatal AE {term} ({death.related_ae_id}).")
    since = []
    for modality in MODALITY_ORDER:
        doses = [
            a.given_at.date()
            for a in patient.administrations
            if a.modality == modality and a.given_at.date() <= death.on
        ]  # as deaths.py: the last dose on or before the date of death, never after it
        if doses:
            since.append(f"{(death.on - max(doses)).days} days after the last {modality}")
    said.append(("Died " + ", ".join(since) + ".") if since else "No treatment was recorded.")
    return " ".join(said)


def sae_narrative(ae: AeState, detail: AeDetail, data: ReviewData) -> Narrative:
    found = data.patient(ae.patient_id)
    assert found is not None  # an AE's patient is always in the same view
    patient = found[1]
    paragraphs = [
        treatment_paragraph(patient),
        course_paragraph(ae, detail),
        status_paragraph(ae, detail),
        labs_paragraph(patient, ae.onset_date),
    ]
    if patient.death is not None:
        paragraphs.append(death_paragraph(patient, data))
    return Narrative(
        "sae",
        ae.patient_id,
        ae.site_id,
        str(ae.ae_id),
        f"Serious AE {ae.ae_id}: {ae.ctcae_term}, patient {ae.patient_id} (site {ae.site_id})",
        tuple(paragraphs),
    )


def death_narrative(patient: PatientDetail, data: ReviewData) -> Narrative:
    assert patient.death is not None
    severe = sorted(
        (a for a, _ in data.aes() if a.patient_id == patient.patient_id and a.worst >= 3),
        key=lambda a: (a.onset_date, str(a.ae_id)),
    )
    listed = "; ".join(
        f"{a.ctcae_term} grade {a.worst}, onset {a.onset_date.isoformat()}, attribution "
        f"{_attribution(a.attribution)}"
        for a in severe
    )
    return Narrative(
        "death",
        patient.patient_id,
        patient.site_id,
        None,
        f"Death of patient {patient.patient_id} (site {patient.site_id})",
        (
            treatment_paragraph(patient),
            death_paragraph(patient, data),
            f"Grade >= 3 AEs of this patient: {listed or 'none'}.",
            labs_paragraph(patient, patient.death.on),
        ),
    )


def narratives(data: ReviewData) -> list[Narrative]:
    """Every serious AE (by onset) and every death (by date), retracted AEs excluded."""
    serious = sorted(
        ((a, d) for a, d in data.aes() if a.seriousness),
        key=lambda pair: (pair[0].onset_date, pair[0].patient_id, str(pair[0].ae_id)),
    )
    dead = sorted(
        (d for _, d in data.patients() if d.death is not None),
        key=lambda d: (d.death.on if d.death else date.min, d.patient_id),
    )
    return [sae_narrative(a, d, data) for a, d in serious] + [
        death_narrative(d, data) for d in dead
    ]
