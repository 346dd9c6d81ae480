"""The monitoring plan: the statistician's YAML file of windows, composite events and rules.

A plan is validated in full before anything uses it: rule ids are unique, every window and
composite a rule names exists, every CTCAE term and SOC exists in the dictionary. Its
``version`` is a content hash of the validated plan, so every derived event can cite exactly
which plan produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from safety_stream.boundaries import bayes_boundary, pocock_table, posterior_above
from safety_stream.ctcae import CtcaeDictionary, ctcae_dictionary
from safety_stream.errors import PlanError, read_user_text
from safety_stream.events import Attribution, LabTest, Modality

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Probability = Annotated[float, Field(gt=0, lt=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrialInfo(_Strict):
    id: str
    title: str
    registration: str = Field(description="Registry id, e.g. NCT06794086")
    planned_enrolment: int = Field(gt=0)
    ctcae_version: Literal["5.0"] = "5.0"
    time_zone: str = Field(
        default="UTC", description="IANA zone of the calendar days reporting deadlines end on"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"unknown time zone {value!r} (an IANA name, e.g. Asia/Shanghai)"
            raise ValueError(message) from None
        return value


class ModalityPlan(_Strict):
    agents: list[str] = Field(min_length=1)
    schedule: str


class Window(_Strict):
    """A follow-up window: ``days`` after an anchor (enrolment, or a modality's exposure)."""

    anchor: Literal["enrolment", "first_exposure", "last_exposure"]
    modality: Modality | None = None
    days: int = Field(gt=0, le=3650)

    @model_validator(mode="after")
    def _modality_for_exposure(self) -> Self:
        if self.anchor != "enrolment" and self.modality is None:
            raise ValueError(f"anchor '{self.anchor}' needs a modality")
        return self


class LabAboveUln(_Strict):
    """A lab value above a multiple of its ULN. Where the patient's baseline (the last value
    before the window opens) is already above that multiple, ``baseline_abnormal_times`` asks
    for that multiple of the baseline instead (QUANTEC non-classic RILD: CTCAE grade 4 levels,
    > 20 x baseline, for transaminases that were > 5 x ULN at baseline)."""

    lab: LabTest
    above_uln: float = Field(gt=0, description="Multiple of the upper limit of normal")
    baseline_abnormal_times: float | None = Field(
        default=None, gt=1, description="Multiple of an abnormal baseline needed instead"
    )


class AdverseEventMatch(_Strict):
    ae_terms: list[str] = Field(min_length=1)
    min_grade: int = Field(default=1, ge=1, le=5)
    immune_related: bool | None = Field(
        default=None, description="Only AEs marked immune-related (true) or not (false)"
    )
    related_only_to: list[Modality] | None = Field(
        default=None,
        description="Only AEs attributed (possible or stronger) to these modalities, none other",
    )


class LabBelowUln(_Strict):
    lab: LabTest
    below_uln: float = Field(gt=0, description="Multiple of the upper limit of normal")


class ChildPughRise(_Strict):
    child_pugh_rise: int = Field(ge=1, le=10, description="Rise in points from baseline")


class AllOf(_Strict):
    all_of: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any_of: list[Condition] = Field(min_length=1)


class SameDraw(_Strict):
    """Lab conditions that hold together on one calendar day (one blood draw), e.g. Hy's law."""

    same_day: list[Condition] = Field(min_length=1)


class NoneOf(_Strict):
    """Holds when none of its conditions holds in the window: excludes a cause, e.g. liver
    injury explained by an immune-related AE attributed to the PD-1 antibody alone."""

    none_of: list[Condition] = Field(min_length=1)


Condition = (
    LabAboveUln
    | LabBelowUln
    | AdverseEventMatch
    | ChildPughRise
    | AllOf
    | AnyOf
    | SameDraw
    | NoneOf
)


class Composite(_Strict):
    """An event CTCAE has no term for (e.g. RILD), defined over AE terms and labs."""

    title: str
    window: str | None = Field(default=None, description="Only counts inside this window")
    when: Condition
    source: str = Field(description="Where the definition comes from")


class EventFilter(_Strict):
    """What a rule counts: AEs by term/SOC (or composites), grade and attribution."""

    terms: list[str] = []
    socs: list[str] = []
    composites: list[str] = []
    min_grade: int = Field(default=3, ge=1, le=5)
    related_to: list[Modality] | Literal["any"] = "any"
    min_attribution: Attribution = Attribution.POSSIBLE
    immune_related: bool | None = None


Evaluability = Literal["completed", "time_weighted"]


class Population(_Strict):
    """Who is counted: patients exposed to a modality (any, if none), evaluable in a window.

    ``evaluability`` says when a patient enters n, never depending on the outcome:

    - ``completed`` (default): once the window has fully elapsed. A patient who left before its
      end (death from another cause, withdrawal, loss to follow-up) without a counted event is
      not evaluable; one who had the counted event before leaving counts as an event.
    - ``time_weighted`` (Bayesian rules): TITE weighting (Cheung & Chappell 2000, Biometrics
      56:1177-1182); each exposed patient adds follow-up / window to n (1 when the window is
      complete or at a counted event), posterior Beta(a + x, b + n - x).
    """

    exposed_to: Modality | Literal["any"] = "any"
    window: str | None = None
    evaluability: Evaluability = "completed"


class _Rule(_Strict):
    id: Slug
    title: str
    illustrative: bool = Field(description="True while thresholds are placeholders")


class BayesianRule(_Rule):
    """Beta-binomial continuous monitoring: stop when P(p > theta | x, n) > cutoff."""

    kind: Literal["bayesian"]
    population: Population
    counts: EventFilter
    prior: tuple[float, float] = Field(description="Beta(a, b) prior")
    theta: Probability
    cutoff: Probability
    min_n: int = Field(default=1, ge=1)
    max_n: int = Field(gt=0)
    expected_rate: Probability | None = Field(
        default=None, description="The rate expected if the treatment is as safe as hoped"
    )
    unacceptable_rate: Probability | None = Field(
        default=None, description="A rate the rule must detect (default: theta)"
    )

    @model_validator(mode="after")
    def _prior_alone_does_not_stop(self) -> Self:
        if self.population.evaluability == "time_weighted" and self.population.window is None:
            raise ValueError("evaluability 'time_weighted' needs a window to weigh follow-up by")
        if self.min_n > self.max_n:
            raise ValueError(f"min_n ({self.min_n}) is above max_n ({self.max_n})")
        if bayes_boundary(self.max_n, self.theta, self.cutoff, self.prior) is None:
            raise ValueError(
                f"even {self.max_n} counted patients of {self.max_n} would not make "
                f"P(p > {self.theta}) exceed {self.cutoff}: the rule can never stop"
            )
        alone = posterior_above(self.theta, 0, self.min_n, self.prior)
        if alone > self.cutoff:
            raise ValueError(
                f"with no counted patient among {self.min_n}, P(p > {self.theta}) is already "
                f"{alone:.3f} > cutoff {self.cutoff}: the prior alone would stop the trial "
                "(use a less pessimistic prior, a higher cutoff or a larger min_n)"
            )
        return self


class PocockRule(_Rule):
    """Pocock-type boundary of Ivanova, Qaqish & Schell (2005), Biometrics 61:540-545."""

    kind: Literal["pocock"]
    population: Population
    counts: EventFilter
    p0: Probability
    p1: Probability
    alpha: Probability
    max_n: int = Field(gt=0)
    looks: list[int] | None = Field(default=None, description="Group-sequential looks")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.population.evaluability != "completed":
            raise ValueError(
                "a pocock rule counts whole patients (evaluability 'completed'); "
                "'time_weighted' is for bayesian rules"
            )
        if self.p1 <= self.p0:
            raise ValueError(f"p1 ({self.p1}) must be above p0 ({self.p0})")
        if self.looks is not None and (
            self.looks != sorted(set(self.looks))
            or self.looks[-1] > self.max_n
            or self.looks[0] < 1
        ):
            raise ValueError(f"looks must increase strictly within 1..{self.max_n}")
        looks = tuple(self.looks) if self.looks is not None else None
        if all(
            b is None for b in pocock_table(self.max_n, self.p0, self.alpha, looks).stop_if_at_least
        ):
            raise ValueError(
                f"no boundary keeps the crossing probability at p0 {self.p0} within alpha "
                f"{self.alpha} with these looks: the rule can never stop"
            )
        return self


class SentinelRule(_Rule):
    """Any single matching event raises an immediate alert."""

    kind: Literal["sentinel"]
    match: EventFilter


class LabSentinelRule(_Rule):
    """A lab-driven signal raised once per patient when its condition first holds (e.g. a
    potential Hy's law case; immune-mediated hepatitis by ALT > 5 x ULN on the PD-1 antibody)."""

    kind: Literal["lab_sentinel"]
    exposed_to: Modality | Literal["any"] = "any"
    when: Condition
    source: str = Field(description="Where the definition comes from")


class ExpeditedReportRule(_Rule):
    """21 CFR 312.32(c): serious, unexpected, suspected adverse reactions reported in 15 calendar
    days from awareness; fatal or life-threatening ones in 7."""

    kind: Literal["expedited_report"]
    fatal_or_life_threatening_days: int = Field(default=7, gt=0)
    other_serious_days: int = Field(default=15, gt=0)
    min_attribution: Attribution = Attribution.POSSIBLE
    suspected_products: list[Modality] | None = Field(
        default=None,
        description="The investigational products a reaction must be suspected to (None: any "
        "modality); e.g. the drugs under the IND, not radiotherapy",
    )


Rule = Annotated[
    BayesianRule | PocockRule | SentinelRule | LabSentinelRule | ExpeditedReportRule,
    Field(discriminator="kind"),
]


class AesiGroup(_Strict):
    """An AE of special interest group (e.g. immune-related hepatitis): the AEs whose CTCAE
    term is one of ``terms`` or whose SOC is one of ``socs``; with ``immune_related`` set,
    only AEs the site marked immune-related (true) or not (false). Tabulated by patients with
    any grade and grade >= 3 (``review.tables``)."""

    title: str
    terms: list[str] = []
    socs: list[str] = []
    immune_related: bool | None = Field(
        default=None, description="Only AEs marked immune-related (true) or not (false)"
    )

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if not self.terms and not self.socs:
            raise ValueError("an AESI group needs CTCAE terms, SOCs or both")
        return self


class MonitoringPlan(_Strict):
    plan_format: Literal[1]
    trial: TrialInfo
    modalities: dict[Modality, ModalityPlan]
    related_means_at_least: Attribution = Attribution.POSSIBLE
    windows: dict[Slug, Window] = {}
    composites: dict[Slug, Composite] = {}
    rules: list[Rule] = Field(min_length=1)
    aesi: dict[Slug, AesiGroup] = Field(
        default={}, description="AE of special interest groups (e.g. irAE), by id"
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems = list(self._reference_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _reference_problems(self) -> Iterator[str]:
        ctcae = ctcae_dictionary(self.trial.ctcae_version)
        ids = [r.id for r in self.rules]
        for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
            yield f"rule id '{duplicate}' is used more than once"
        for name, composite in self.composites.items():
            if composite.window is not None and composite.window not in self.windows:
                yield f"composite '{name}': unknown window '{composite.window}'"
            for term in _condition_terms(composite.when):
                if ctcae.lookup(term) is None:
                    yield _term_problem(f"composite '{name}'", term)
        for rule in self.rules:
            yield from self._rule_reference_problems(rule, ctcae)
        for name, group in self.aesi.items():
            for term in group.terms:
                if ctcae.lookup(term) is None:
                    yield _term_problem(f"aesi '{name}'", term)
            for soc in group.socs:
                if soc not in ctcae.socs:
                    yield f"aesi '{name}': '{soc}' is not a CTCAE v5.0 system organ class"

    def _rule_reference_problems(self, rule: Rule, ctcae: CtcaeDictionary) -> Iterator[str]:
        population = getattr(rule, "population", None)
        if population is not None and population.window not in (None, *self.windows):
            yield f"rule '{rule.id}': unknown window '{population.window}'"
        if isinstance(rule, LabSentinelRule):
            for term in _condition_terms(rule.when):
                if ctcae.lookup(term) is None:
                    yield _term_problem(f"rule '{rule.id}'", term)
            return
        counted = getattr(rule, "counts", None) or getattr(rule, "match", None)
        if counted is None:
            return
        for term in counted.terms:
            if ctcae.lookup(term) is None:
                yield _term_problem(f"rule '{rule.id}'", term)
        for soc in counted.socs:
            if soc not in ctcae.socs:
                yield f"rule '{rule.id}': '{soc}' is not a CTCAE v5.0 system organ class"
        for composite_name in counted.composites:
            if composite_name not in self.composites:
                yield f"rule '{rule.id}': unknown composite '{composite_name}'"

    @property
    def version(self) -> str:
        """Content hash of the validated plan (first 12 hex digits of SHA-256)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _condition_terms(condition: Condition) -> list[str]:
    if isinstance(condition, AdverseEventMatch):
        return list(condition.ae_terms)
    if isinstance(condition, AllOf | AnyOf | SameDraw | NoneOf):
        return [t for part in condition_parts(condition) for t in _condition_terms(part)]
    return []


def condition_parts(condition: AllOf | AnyOf | SameDraw | NoneOf) -> list[Condition]:
    if isinstance(condition, AllOf):
        return condition.all_of
    if isinstance(condition, AnyOf):
        return condition.any_of
    return condition.same_day if isinstance(condition, SameDraw) else condition.none_of


def _term_problem(where: str, term: str) -> str:
    suggestions = ctcae_dictionary().suggest(term)
    hint = f" (did you mean '{suggestions[0]}'?)" if suggestions else ""
    return f"{where}: '{term}' is not a CTCAE v5.0 term{hint}"


def parse_plan(text: str, source: str = "<plan>") -> MonitoringPlan:
    """Validate plan YAML; raises ``PlanError`` listing every problem with its location."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PlanError(source, [f"not valid YAML: {error}"]) from error
    try:
        return MonitoringPlan.model_validate(document)
    except ValidationError as error:
        messages = []
        for detail in error.errors(include_url=False):
            where = ".".join(str(p) for p in detail["loc"]) or "(plan)"
            messages.append(f"{where}: {detail['msg'].removeprefix('Value error, ')}")
        raise PlanError(source, messages) from error


def load_plan(path: Path) -> MonitoringPlan:
    """Read and validate a plan file."""
    return parse_plan(read_user_text(path, "plan"), str(path))
