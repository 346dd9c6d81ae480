"""Deaths: cause, date and days from the last dose of each modality, flagged within 30 days.

The last dose of a modality is its latest administration on or before the date of death;
days = date of death - that administration's (UTC) date. A death is *within 30 days* of a
modality when those days are 30 or fewer (a patient never given the modality has none). The
closed report and the board list each death; the open report shows pooled counts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from safety_stream.plan import MonitoringPlan
from safety_stream.review.dataset import ReviewData
from safety_stream.review.details import PatientDetail
from safety_stream.review.table import DmcTable, table_of
from safety_stream.review.tables import MODALITIES, related_to

WITHIN_DAYS = 30


@dataclass(frozen=True, slots=True)
class DeathRow:
    patient_id: str
    site_id: str
    death_date: date
    cause: str
    fatal_ae: str | None  # the CTCAE term of the AE the death cites (not retracted)
    fatal_ae_related_to: str | None
    days_from_last_radiotherapy: int | None
    days_from_last_chemotherapy: int | None
    days_from_last_immunotherapy: int | None
    within_30_days_of: str  # the modalities, "" if none


@dataclass(frozen=True, slots=True)
class DeathCount:
    measure: str
    patients: int


def days_from_last_dose(detail: PatientDetail, modality: str, death: date) -> int | None:
    given = [
        a.given_at.date()
        for a in detail.administrations
        if a.modality == modality and a.given_at.date() <= death
    ]
    return (death - max(given)).days if given else None


def deaths(data: ReviewData, plan: MonitoringPlan) -> list[DeathRow]:
    """Every death, by date then patient id."""
    threshold = plan.related_means_at_least
    rows = []
    for _, detail in data.patients():
        death = detail.death
        if death is None:
            continue
        days = [days_from_last_dose(detail, m, death.on) for m in MODALITIES]
        cited = data.ae(death.related_ae_id) if death.related_ae_id is not None else None
        fatal = cited[0] if cited is not None and cited[0].status != "retracted" else None
        rows.append(
            DeathRow(
                detail.patient_id, detail.site_id, death.on, death.details or "",
                fatal.ctcae_term if fatal else None,
                (", ".join(related_to(fatal, threshold)) or "none") if fatal else None,
                days[0], days[1], days[2],
                ", ".join(m for m, d in zip(MODALITIES, days, strict=True)
                          if d is not None and d <= WITHIN_DAYS),
            )
        )  # fmt: skip
    return sorted(rows, key=lambda r: (r.death_date, r.patient_id))


def death_counts(data: ReviewData, plan: MonitoringPlan) -> list[DeathCount]:
    listed = deaths(data, plan)
    rows = [
        DeathCount("Deaths", len(listed)),
        DeathCount(
            f"Within {WITHIN_DAYS} days of the last dose of any modality",
            sum(bool(r.within_30_days_of) for r in listed),
        ),
    ]
    for modality in MODALITIES:
        rows.append(
            DeathCount(
                f"Within {WITHIN_DAYS} days of the last {modality} dose",
                sum(modality in r.within_30_days_of.split(", ") for r in listed),
            )
        )
    rows.append(DeathCount("Citing a fatal AE", sum(r.fatal_ae is not None for r in listed)))
    rows.append(
        DeathCount(
            "Citing a treatment-related fatal AE",
            sum(r.fatal_ae_related_to not in (None, "none") for r in listed),
        )
    )
    return rows


DEATH_RULES = f"""Days from the last dose: date of death minus the date of the latest
administration of that modality on or before it (empty: never given). Within {WITHIN_DAYS}
days: {WITHIN_DAYS} days or fewer. A fatal AE is the AE the death record cites (retracted ones
are not shown); related: attributed at least as the plan's "related"."""


def death_table(data: ReviewData, plan: MonitoringPlan, patient_level: bool) -> DmcTable:
    if patient_level:
        return table_of(
            "deaths", "Deaths: cause and days from the last dose of each modality",
            DeathRow, deaths(data, plan), DEATH_RULES, patient_level=True,
        )  # fmt: skip
    return table_of(
        "deaths", "Deaths and their timing relative to the last dose (pooled)",
        DeathCount, death_counts(data, plan), DEATH_RULES,
    )  # fmt: skip
