"""The SDTM variables of each dataset (names, labels, types) and the controlled terms the
datasets use, within the SAS transport version 5 limits: names of at most 8 characters, labels
of at most 40, character values of at most 200 bytes. What the values are is ``review.sdtm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from safety_stream.events import Modality

Value = str | float | int | None
MAX_NAME, MAX_LABEL, MAX_BYTES = 8, 40, 200


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # <= 8 characters
    label: str  # <= 40 characters
    type: Literal["Char", "Num"]


@dataclass(frozen=True, slots=True)
class Dataset:
    """One SDTM-shaped dataset: its name (``AE``), label, columns and rows."""

    name: str
    label: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Value, ...], ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> list[Value]:
        """Every row's value of one column (for tests and summaries)."""
        at = self.names.index(name)
        return [row[at] for row in self.rows]


def _columns(*spec: str) -> tuple[Column, ...]:
    """Columns from "NAME|Label|Char" strings."""
    out = []
    for text in spec:
        name, label, kind = text.split("|")
        assert kind in ("Char", "Num") and len(name) <= MAX_NAME and len(label) <= MAX_LABEL
        out.append(Column(name, label, "Char" if kind == "Char" else "Num"))
    return tuple(out)


AE_COLUMNS = _columns(
    "STUDYID|Study Identifier|Char", "DOMAIN|Domain Abbreviation|Char",
    "USUBJID|Unique Subject Identifier|Char", "AESEQ|Sequence Number|Num",
    "AESPID|Sponsor-Defined Identifier|Char", "AETERM|Reported Term for the Adverse Event|Char",
    "AEDECOD|Dictionary-Derived Term|Char", "AELLTCD|Lowest Level Term Code|Num",
    "AEBODSYS|Body System or Organ Class|Char", "AETOXGR|Standard Toxicity Grade|Char",
    "AESER|Serious Event|Char", "AESDTH|Results in Death|Char",
    "AESLIFE|Is Life Threatening|Char", "AESHOSP|Requires or Prolongs Hospitalization|Char",
    "AESDISAB|Persist or Signif Disability/Incapacity|Char",
    "AESCONG|Congenital Anomaly or Birth Defect|Char",
    "AESMIE|Other Medically Important Serious Event|Char",
    "AEACN|Action Taken with Study Treatment|Char", "AEREL|Causality|Char",
    "AEOUT|Outcome of Adverse Event|Char", "AESTDTC|Start Date/Time of Adverse Event|Char",
    "AEENDTC|End Date/Time of Adverse Event|Char",
)  # fmt: skip
SUPPAE_COLUMNS = _columns(
    "STUDYID|Study Identifier|Char", "RDOMAIN|Related Domain Abbreviation|Char",
    "USUBJID|Unique Subject Identifier|Char", "IDVAR|Identifying Variable|Char",
    "IDVARVAL|Identifying Variable Value|Char", "QNAM|Qualifier Variable Name|Char",
    "QLABEL|Qualifier Variable Label|Char", "QVAL|Data Value|Char", "QORIG|Origin|Char",
)  # fmt: skip
DM_COLUMNS = _columns(
    "STUDYID|Study Identifier|Char", "DOMAIN|Domain Abbreviation|Char",
    "USUBJID|Unique Subject Identifier|Char", "SUBJID|Subject Identifier for the Study|Char",
    "RFSTDTC|Subject Reference Start Date/Time|Char",
    "RFENDTC|Subject Reference End Date/Time|Char",
    "RFXSTDTC|Date/Time of First Study Treatment|Char",
    "RFXENDTC|Date/Time of Last Study Treatment|Char",
    "RFICDTC|Date/Time of Informed Consent|Char",
    "RFPENDTC|Date/Time of End of Participation|Char", "DTHDTC|Date/Time of Death|Char",
    "DTHFL|Subject Death Flag|Char", "SITEID|Study Site Identifier|Char",
    "ARMCD|Planned Arm Code|Char", "ARM|Description of Planned Arm|Char",
    "ACTARMCD|Actual Arm Code|Char", "ACTARM|Description of Actual Arm|Char",
)  # fmt: skip
EX_COLUMNS = _columns(
    "STUDYID|Study Identifier|Char", "DOMAIN|Domain Abbreviation|Char",
    "USUBJID|Unique Subject Identifier|Char", "EXSEQ|Sequence Number|Num",
    "EXSPID|Sponsor-Defined Identifier|Char", "EXCAT|Category of Treatment|Char",
    "EXTRT|Name of Treatment|Char", "EXDOSE|Dose|Num", "EXDOSU|Dose Units|Char",
    "EXADJ|Reason for Dose Adjustment|Char", "EXLOC|Location of Dose Administration|Char",
    "EXSTDTC|Start Date/Time of Treatment|Char", "EXENDTC|End Date/Time of Treatment|Char",
)  # fmt: skip
LB_COLUMNS = _columns(
    "STUDYID|Study Identifier|Char", "DOMAIN|Domain Abbreviation|Char",
    "USUBJID|Unique Subject Identifier|Char", "LBSEQ|Sequence Number|Num",
    "LBTESTCD|Lab Test or Examination Short Name|Char",
    "LBTEST|Lab Test or Examination Name|Char", "LBCAT|Category for Lab Test|Char",
    "LBORRES|Result or Finding in Original Units|Char", "LBORRESU|Original Units|Char",
    "LBORNRLO|Reference Range Lower Limit in Orig Unit|Char",
    "LBORNRHI|Reference Range Upper Limit in Orig Unit|Char",
    "LBBLFL|Baseline Flag|Char", "LBDTC|Date/Time of Specimen Collection|Char",
)  # fmt: skip
DS_COLUMNS = _columns(
    "STUDYID|Study Identifier|Char", "DOMAIN|Domain Abbreviation|Char",
    "USUBJID|Unique Subject Identifier|Char", "DSSEQ|Sequence Number|Num",
    "DSTERM|Reported Term for the Disposition Event|Char",
    "DSDECOD|Standardized Disposition Term|Char", "DSCAT|Category for Disposition Event|Char",
    "DSSTDTC|Start Date/Time of Disposition Event|Char",
)  # fmt: skip

# the three modalities in SUPPAE order, with the short names ARM and QLABEL use
MODALITY_ORDER = (Modality.RADIOTHERAPY.value, Modality.CHEMOTHERAPY.value,
                  Modality.IMMUNOTHERAPY.value)  # fmt: skip
SHORT = {"radiotherapy": "SBRT", "immunotherapy": "PD-1", "chemotherapy": "5-FU"}
ARM_ORDER = ("radiotherapy", "immunotherapy", "chemotherapy")  # "SBRT + PD-1 + 5-FU"
ARM_CODES = {"radiotherapy": "SBRT", "immunotherapy": "PD1", "chemotherapy": "5FU"}
# the SDTMIG null values of DM's arms: no planned arm (ARMCD/ARM), nothing received (ACTARM*)
NOT_ASSIGNED = ("NOTASSGN", "Not Assigned")
NOT_TREATED = ("NOTTRT", "Not Treated")
REL_LABELS = {
    "radiotherapy": "Relationship to SBRT",
    "chemotherapy": "Relationship to 5-FU chemotherapy",
    "immunotherapy": "Relationship to PD-1 antibody",
}
SERIOUS_FLAGS = (
    ("AESDTH", "death"), ("AESLIFE", "life_threatening"), ("AESHOSP", "hospitalisation"),
    ("AESDISAB", "disability"), ("AESCONG", "congenital_anomaly"),
    ("AESMIE", "medically_important"),
)  # fmt: skip
OUTCOMES = {
    "recovered": "RECOVERED/RESOLVED",
    "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE",
    "fatal": "FATAL",
}
ONGOING = "NOT RECOVERED/NOT RESOLVED"
LAB_TESTS = {  # the event's test -> (LBTESTCD, LBTEST, LBCAT)
    "ALT": ("ALT", "Alanine Aminotransferase", "CHEMISTRY"),
    "AST": ("AST", "Aspartate Aminotransferase", "CHEMISTRY"),
    "ALP": ("ALP", "Alkaline Phosphatase", "CHEMISTRY"),
    "bilirubin_total": ("BILI", "Bilirubin", "CHEMISTRY"),
    "albumin": ("ALB", "Albumin", "CHEMISTRY"),
    "INR": ("INR", "Prothrombin Intl. Normalized Ratio", "COAGULATION"),
}
WITHDRAWAL_TERMS = {  # withdrawal reason -> DSDECOD (CDISC NCOMPLT)
    "consent_withdrawn": "WITHDRAWAL BY SUBJECT",
    "investigator_decision": "PHYSICIAN DECISION",
    "adverse_event": "ADVERSE EVENT",
    "progression": "PROGRESSIVE DISEASE",
    "other": "OTHER",
}
DATASETS = ("ae", "suppae", "dm", "ex", "lb", "ds")
