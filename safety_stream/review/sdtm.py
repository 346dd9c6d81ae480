"""SDTM-shaped datasets for a statistician's own analysis: AE, SUPPAE, DM, EX, LB and DS, built
from a :class:`ReviewData` as of a clinical cut-off. Pure: the same data always gives the same
rows in the same order.

The shape follows the CDISC SDTM Implementation Guide (v3.4): variable names of at most 8
characters, labels of at most 40 and character values of at most 200 bytes (UTF-8), so each
dataset can be written as SAS transport version 5. Choices the events leave open, decided here:

- ``USUBJID`` is ``STUDYID-SUBJID`` (``SPARKLE-L-P001``): a patient id is unique in the whole
  trial (the store refuses a second enrolment), so the site need not be part of it; the site
  is ``SITEID`` in DM.
- The variables, labels and controlled terms are in ``review.sdtm_spec``.
- Dates and times are ISO 8601; times are in UTC without an offset (the store keeps UTC), to
  the second. A date is the UTC date of the time, and the cut-off compares such dates.
- AE: one row per AE that was not retracted. ``AETERM`` is the investigator's verbatim term
  when given, else the CTCAE term. ``AEDECOD`` is the CTCAE v5.0 term, which in CTCAE v5.0 is
  a MedDRA *lowest-level term*, **not** the MedDRA preferred term SDTM expects in AEDECOD: the
  system holds no MedDRA dictionary to map an LLT to its PT (several LLTs share one PT), so an
  analyst who needs PTs codes ``AELLTCD`` (the MedDRA LLT code the site sent) with their own
  licensed MedDRA; ``AEBODSYS`` is the MedDRA SOC CTCAE files the term under. ``AETOXGR``
  is the worst CTCAE grade over the AE's course (5 once fatal), what the monitoring
  rules count. ``AESDTH`` is ``Y`` when death is among the AE's seriousness criteria or the AE
  was fatal (resolved as fatal, or cited by the patient's death), and ``AESER`` then too.
  ``AEREL`` is the strongest attribution to any modality, in the trial's own 5-point scale
  upper-cased (``DEFINITE`` ... ``UNRELATED``); the attribution to each modality is in SUPPAE.
  ``AESEQ`` numbers a patient's AEs by onset, term and AE id.
- SUPPAE: per AE, ``AEREL1`` (SBRT), ``AEREL2`` (5-FU chemotherapy), ``AEREL3`` (PD-1
  antibody), the attribution to each modality, and ``AEIRAE`` (immune-related AE, ``Y``/``N``,
  as the investigator flagged it); ``IDVAR`` is ``AESEQ``.
- DM: ``RFSTDTC``/``RFXSTDTC`` the first dose of any modality, ``RFENDTC``/``RFXENDTC`` the last
  dose, ``RFICDTC`` the consent date, ``RFPENDTC`` the day the patient left the study (death,
  withdrawal or last contact when lost); ``ARM`` is what the patient was planned to receive at
  enrolment (``SBRT + PD-1 + 5-FU`` for the whole regimen), ``ACTARM`` what they received;
  with none, the SDTMIG null values ``NOTASSGN`` ("Not Assigned") for the planned arm and
  ``NOTTRT`` ("Not Treated") for the actual one.
- EX: one row per administration. ``EXTRT`` is ``SBRT``, the chemotherapy regimen or the PD-1
  agent; SBRT doses are in Gy, the antibody in mg; the events give no chemotherapy dose
  (``EXDOSE`` empty) but say when it was reduced (``EXADJ``). ``EXSPID`` names the fraction,
  cycle and day.
- LB: the liver panel as the site reported it (original units and normal range; no unit
  conversion). ``LBBLFL`` is ``Y`` on the last value of each test collected before the first
  dose (on or before the first dose's time).
- DS: informed consent (protocol milestone), then how the patient left: death, withdrawal
  (its reason in CDISC terms) or loss to follow-up. The review dataset keeps a patient's latest
  exit and their death: a withdrawal followed by death shows the death only.

The cut-off (``cutoff``: a date, or None for everything) leaves out what is dated after it:
patients enrolled, AEs with onset, doses, lab samples and exits after it; an AE resolved after
it is shown ongoing (no end date, ``NOT RECOVERED/NOT RESOLVED``). What an AE was at the
cut-off (its worst grade, seriousness, attribution, immune-relatedness, outcome and whether it
was fatal) is replayed from its history (``review.ae_as_of``): a worsening, a fatal resolution
or a death dated after the cut-off is not in ``AETOXGR``, ``AESER``/``AESDTH`` or ``AEOUT``.
A :class:`ReviewData` from the report's snapshot (``snapshot_as_of`` with the same cut-off, what
the ``export`` command folds) has already left those events out; on the live data (the API) the
filter and the replay here do it, and the two give the same rows for the same log and cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from safety_stream.events import ATTRIBUTION_RANK
from safety_stream.projections.state import AeState, PatientState
from safety_stream.review.ae_as_of import AeAsOf, ae_as_of
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import Administration, Exit, LabValue, PatientDetail
from safety_stream.review.sdtm_spec import (
    AE_COLUMNS,
    ARM_CODES,
    ARM_ORDER,
    DATASETS,
    DM_COLUMNS,
    DS_COLUMNS,
    EX_COLUMNS,
    LAB_TESTS,
    LB_COLUMNS,
    MAX_BYTES,
    MODALITY_ORDER,
    NOT_ASSIGNED,
    NOT_TREATED,
    ONGOING,
    OUTCOMES,
    REL_LABELS,
    SERIOUS_FLAGS,
    SHORT,
    SUPPAE_COLUMNS,
    WITHDRAWAL_TERMS,
    Dataset,
    Value,
)

__all__ = ["DATASETS", "Dataset", "sdtm_dataset", "sdtm_datasets"]


def fit(text: str, limit: int = MAX_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character, and without
    the trailing blanks a cut can leave (SAS pads character values with blanks: trailing ones
    do not survive a transport file)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore").rstrip()


def usubjid(study_id: str, patient_id: str) -> str:
    return f"{study_id}-{patient_id}"


def dtc(moment: datetime | date | None) -> str:
    """ISO 8601 as SDTM writes it: a date, or a UTC time to the second without offset."""
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    return moment.isoformat()


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _within(day: date | None, cutoff: date | None) -> bool:
    return day is not None and (cutoff is None or day <= cutoff)


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def strongest(attribution: dict[str, str]) -> str:
    """The strongest attribution to any modality (``unrelated`` when none is given)."""
    return max(attribution.values(), key=ATTRIBUTION_RANK.__getitem__, default="unrelated")


def arm(modalities: list[str] | set[str], *, planned: bool) -> tuple[str, str]:
    """(code, description) of the arm of a set of modalities, e.g. ("SBRT-PD1-5FU",
    "SBRT + PD-1 + 5-FU"); of none, the SDTMIG null value: ``NOTASSGN``/"Not Assigned" for
    the planned arm (ARMCD/ARM), ``NOTTRT``/"Not Treated" for the actual one (ACTARMCD/ACTARM).
    """
    chosen = [m for m in ARM_ORDER if m in modalities]
    if not chosen:
        return NOT_ASSIGNED if planned else NOT_TREATED
    return "-".join(ARM_CODES[m] for m in chosen), " + ".join(SHORT[m] for m in chosen)


# -- what the cut-off keeps -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """One patient as of the cut-off: the patient, their detail and what falls inside it."""

    state: PatientState
    detail: PatientDetail
    usubjid: str
    doses: tuple[Administration, ...]
    labs: tuple[LabValue, ...]
    exit: Exit | None
    death: Exit | None

    @property
    def first_dose(self) -> datetime | None:
        return min((a.given_at for a in self.doses), default=None)

    @property
    def last_dose(self) -> datetime | None:
        return max((a.given_at for a in self.doses), default=None)


def _enrolled_on(state: PatientState, detail: PatientDetail) -> date | None:
    if state.enrolled_at is not None:
        return _day(state.enrolled_at)
    return detail.consent_date


def subjects(data: ReviewData, cutoff: date | None) -> list[Subject]:
    """Every patient enrolled by the cut-off, in USUBJID order."""
    out = []
    for state, detail in data.patients():
        if not _within(_enrolled_on(state, detail), cutoff):
            continue
        out.append(
            Subject(
                state=state,
                detail=detail,
                usubjid=usubjid(state.trial_id, state.patient_id),
                doses=tuple(
                    sorted(
                        (a for a in detail.administrations if _within(_day(a.given_at), cutoff)),
                        key=lambda a: (a.given_at, a.position),
                    )
                ),
                labs=tuple(
                    sorted(
                        (x for x in detail.labs if _within(_day(x.collected_at), cutoff)),
                        key=lambda x: (x.collected_at, x.position),
                    )
                ),
                exit=detail.exit if detail.exit and _within(detail.exit.on, cutoff) else None,
                death=detail.death if detail.death and _within(detail.death.on, cutoff) else None,
            )
        )
    return sorted(out, key=lambda s: s.usubjid)


@dataclass(frozen=True, slots=True)
class AeRecord:
    """One AE inside the cut-off, with its subject and sequence number; ``as_of`` is what
    it was at the cut-off (grade course, seriousness, attribution, outcome, fatal)."""

    subject: Subject
    ae: AeState
    as_of: AeAsOf
    seq: int
    verbatim: str
    action_taken: str
    llt: int


def adverse_events(
    data: ReviewData, cutoff: date | None, enrolled: dict[str, Subject]
) -> list[AeRecord]:
    """Each AE of an enrolled patient with onset inside the cut-off, in AESEQ order."""
    found = []
    for ae, detail in data.aes():
        subject = enrolled.get(ae.patient_id)
        if subject is None or not _within(ae.onset_date, cutoff):
            continue
        found.append((subject, ae, detail.verbatim_term or ae.ctcae_term, detail))
    found.sort(key=lambda f: (f[0].usubjid, f[1].onset_date, f[1].ctcae_term, str(f[1].ae_id)))
    out: list[AeRecord] = []
    counter: dict[str, int] = {}
    for subject, ae, verbatim, detail in found:
        counter[subject.usubjid] = counter.get(subject.usubjid, 0) + 1
        out.append(
            AeRecord(subject, ae, ae_as_of(ae, detail, subject.death, cutoff),
                     counter[subject.usubjid], verbatim, detail.action_taken, detail.meddra_code)
        )  # fmt: skip
    return out


# -- the datasets --------------------------------------------------------------------------


def _outcome(ae: AeAsOf, cutoff: date | None) -> tuple[str, str]:
    """(AEOUT, AEENDTC) as of the cut-off."""
    ended = ae.end_date is not None and _within(ae.end_date, cutoff)
    if ae.fatal and (ended or ae.end_date is None):
        return "FATAL", dtc(ae.end_date) if ended else ""
    if ae.status == "resolved" and ended and ae.outcome is not None:
        return OUTCOMES.get(ae.outcome, ae.outcome.upper()), dtc(ae.end_date)
    return ONGOING, ""


def ae_dataset(records: list[AeRecord], cutoff: date | None) -> Dataset:
    rows: list[tuple[Value, ...]] = []
    for r in records:
        ae, as_of = r.ae, r.as_of
        outcome, ended = _outcome(as_of, cutoff)
        serious = set(as_of.seriousness) | ({"death"} if as_of.fatal else set())
        rows.append(
            (
                r.subject.state.trial_id, "AE", r.subject.usubjid, r.seq, str(ae.ae_id),
                fit(r.verbatim), fit(ae.ctcae_term), r.llt, fit(ae.soc), str(as_of.worst),
                _yn(bool(serious)), *(_yn(kind in serious) for _, kind in SERIOUS_FLAGS),
                r.action_taken.upper().replace("_", " "), strongest(as_of.attribution).upper(),
                outcome, dtc(ae.onset_date), ended,
            )
        )  # fmt: skip
    return Dataset("AE", "Adverse Events", AE_COLUMNS, tuple(rows))


def suppae_dataset(records: list[AeRecord]) -> Dataset:
    rows: list[tuple[Value, ...]] = []
    for r in records:
        key = (r.subject.state.trial_id, "AE", r.subject.usubjid, "AESEQ", str(r.seq))
        for number, modality in enumerate(MODALITY_ORDER, start=1):
            given = r.as_of.attribution.get(modality)
            if given is not None:
                rows.append((*key, f"AEREL{number}", REL_LABELS[modality], given.upper(), "CRF"))
        rows.append((*key, "AEIRAE", "Immune-Related Adverse Event",
                     _yn(r.as_of.immune_related), "CRF"))  # fmt: skip
    return Dataset("SUPPAE", "Supplemental Qualifiers for AE", SUPPAE_COLUMNS, tuple(rows))


def dm_dataset(enrolled: list[Subject]) -> Dataset:
    rows: list[tuple[Value, ...]] = []
    for s in enrolled:
        first, last = dtc(s.first_dose), dtc(s.last_dose)
        ended = s.death or s.exit
        planned = arm(s.detail.planned_modalities, planned=True)
        actual = arm({a.modality for a in s.doses}, planned=False)
        rows.append(
            (
                s.state.trial_id, "DM", s.usubjid, s.state.patient_id, first, last, first, last,
                dtc(s.detail.consent_date), dtc(ended.on if ended else None),
                dtc(s.death.on if s.death else None), "Y" if s.death else "", s.state.site_id,
                *planned, *actual,
            )
        )  # fmt: skip
    return Dataset("DM", "Demographics", DM_COLUMNS, tuple(rows))


def _exposure(a: Administration) -> tuple[str, str, float | None, str, str, str, str]:
    """(EXSPID, EXTRT, EXDOSE, EXDOSU, EXADJ, EXLOC, EXCAT) of one administration."""
    if a.modality == "radiotherapy":
        spid = f"FRACTION {a.fraction}/{a.fractions_planned}"
        return spid, "SBRT", a.dose_gy, "Gy", "", fit(a.target or ""), "RADIOTHERAPY"
    if a.modality == "chemotherapy":
        spid = f"CYCLE {a.cycle} DAY {a.day}"
        adjusted = "DOSE REDUCED" if a.dose_reduced else ""
        return spid, fit(a.regimen or ""), None, "", adjusted, "", "CHEMOTHERAPY"
    return f"CYCLE {a.cycle}", fit(a.agent or ""), a.dose_mg, "mg", "", "", "IMMUNOTHERAPY"


def ex_dataset(enrolled: list[Subject]) -> Dataset:
    rows: list[tuple[Value, ...]] = []
    for s in enrolled:
        for seq, a in enumerate(s.doses, start=1):
            spid, treatment, dose, unit, adjusted, where, category = _exposure(a)
            rows.append(
                (
                    s.state.trial_id, "EX", s.usubjid, seq, spid, category, treatment, dose,
                    unit, adjusted, where, dtc(a.given_at), dtc(a.given_at),
                )
            )  # fmt: skip
    return Dataset("EX", "Exposure", EX_COLUMNS, tuple(rows))


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.12g}"


def baseline_labs(s: Subject) -> set[int]:
    """Log positions of the baseline values: the last of each test at or before first dose."""
    first = s.first_dose
    if first is None:
        return set()
    last: dict[str, LabValue] = {}
    for lab in s.labs:
        if lab.collected_at <= first:
            last[lab.test] = lab
    return {lab.position for lab in last.values()}


def lb_dataset(enrolled: list[Subject]) -> Dataset:
    rows: list[tuple[Value, ...]] = []
    for s in enrolled:
        baseline = baseline_labs(s)
        for seq, lab in enumerate(s.labs, start=1):
            code, name, category = LAB_TESTS.get(lab.test, (lab.test[:8].upper(), lab.test, ""))
            rows.append(
                (
                    s.state.trial_id, "LB", s.usubjid, seq, code, name, category,
                    _number(lab.value), lab.unit.strip(), _number(lab.lln), _number(lab.uln),
                    "Y" if lab.position in baseline else "", dtc(lab.collected_at),
                )
            )  # fmt: skip
    return Dataset("LB", "Laboratory Test Results", LB_COLUMNS, tuple(rows))


def _dispositions(s: Subject) -> list[tuple[str, str, str, date]]:
    """(DSTERM, DSDECOD, DSCAT, date) of one subject, in date order."""
    out = []
    if s.detail.consent_date is not None:
        out.append(("INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED",
                    "PROTOCOL MILESTONE", s.detail.consent_date))  # fmt: skip
    if s.exit is not None and s.exit.kind == "withdrawn":
        decoded = WITHDRAWAL_TERMS.get(s.exit.reason or "other", "OTHER")
        term = s.exit.details or decoded
        out.append((fit(term), decoded, "DISPOSITION EVENT", s.exit.on))
    if s.exit is not None and s.exit.kind == "lost_to_follow_up":
        out.append(("LOST TO FOLLOW-UP", "LOST TO FOLLOW-UP", "DISPOSITION EVENT", s.exit.on))
    if s.death is not None:
        out.append((fit(s.death.details or "DEATH"), "DEATH", "DISPOSITION EVENT", s.death.on))
    return sorted(out, key=lambda d: d[3])


def ds_dataset(enrolled: list[Subject]) -> Dataset:
    rows: list[tuple[Value, ...]] = []
    for s in enrolled:
        for seq, (term, decoded, category, on) in enumerate(_dispositions(s), start=1):
            rows.append((s.state.trial_id, "DS", s.usubjid, seq, term, decoded, category, dtc(on)))
    return Dataset("DS", "Disposition", DS_COLUMNS, tuple(rows))


def sdtm_datasets(data: ReviewData, cutoff: date | None = None) -> dict[str, Dataset]:
    """Every dataset, keyed by its lower-case name (``ae``, ``suppae``, ``dm``, ``ex``,
    ``lb``, ``ds``), as of ``cutoff`` (None: everything in ``data``)."""
    return {name: sdtm_dataset(data, name, cutoff) for name in DATASETS}


_OF_SUBJECTS = {"dm": dm_dataset, "ex": ex_dataset, "lb": lb_dataset, "ds": ds_dataset}


def sdtm_dataset(data: ReviewData, name: str, cutoff: date | None = None) -> Dataset:
    """One dataset by its lower-case name (``ValueError`` naming the known ones otherwise);
    only what that dataset needs is computed."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    enrolled = subjects(data, cutoff)
    if name in _OF_SUBJECTS:
        return _OF_SUBJECTS[name](enrolled)
    records = adverse_events(data, cutoff, {s.state.patient_id: s for s in enrolled})
    return ae_dataset(records, cutoff) if name == "ae" else suppae_dataset(records)
