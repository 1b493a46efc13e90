"""Code tables: the exact systems, codes, displays and units the generator emits.

Every coded value is built once here as an immutable-by-convention ``dict`` and shared by
all resources that use it (the writers serialise immediately and nothing mutates them), so
the hot path never copies or rebuilds codings. The dbt project relies on these systems and
codes; change them only together with its seeds and models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# --- code systems -------------------------------------------------------------------------
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
NPI = "http://hl7.org/fhir/sid/us-npi"
SSN = "http://hl7.org/fhir/sid/us-ssn"
MRN = "http://hospital.example.org/mrn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
DISCHARGE = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
DRUG_FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
OMB = "urn:oid:2.16.840.1.113883.6.238"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
LANGUAGE = "urn:ietf:bcp:47"


def coding(system: str, code: str, display: str) -> JSON:
    """Build a FHIR Coding."""
    return {"system": system, "code": code, "display": display}


def concept(system: str, code: str, display: str, text: str | None = None) -> JSON:
    """Build a FHIR CodeableConcept with one coding and a text."""
    return {"coding": [coding(system, code, display)], "text": text or display}


# --- administrative ---------------------------------------------------------------------------
MRN_TYPE = {"coding": [{"system": V2_0203, "code": "MR"}]}
SSN_TYPE = {"coding": [{"system": V2_0203, "code": "SS"}]}

RACES: tuple[tuple[str, str, float], ...] = (
    ("2106-3", "White", 0.60),
    ("2054-5", "Black or African American", 0.13),
    ("2028-9", "Asian", 0.06),
    ("1002-5", "American Indian or Alaska Native", 0.02),
    ("2076-8", "Native Hawaiian or Other Pacific Islander", 0.01),
    ("2131-1", "Other Race", 0.18),
)
ETHNICITIES: tuple[tuple[str, str], ...] = (
    ("2135-2", "Hispanic or Latino"),
    ("2186-5", "Not Hispanic or Latino"),
)


def _us_core_ext(url: str, code: str, display: str) -> JSON:
    return {
        "url": url,
        "extension": [
            {"url": "ombCategory", "valueCoding": coding(OMB, code, display)},
            {"url": "text", "valueString": display},
        ],
    }


RACE_EXTENSIONS: tuple[JSON, ...] = tuple(_us_core_ext(US_CORE_RACE, c, d) for c, d, _ in RACES)
RACE_WEIGHTS: tuple[float, ...] = tuple(w for _, _, w in RACES)
ETHNICITY_EXTENSIONS: tuple[JSON, ...] = tuple(
    _us_core_ext(US_CORE_ETHNICITY, c, d) for c, d in ETHNICITIES
)

MARITAL_STATUS: dict[str, JSON] = {
    code: concept(MARITAL, code, display)
    for code, display in (
        ("M", "Married"),
        ("S", "Never Married"),
        ("D", "Divorced"),
        ("W", "Widowed"),
    )
}
COMMUNICATION_EN = [{"language": concept(LANGUAGE, "en-US", "English (United States)")}]
ORG_TYPE_PROVIDER = [concept(ORG_TYPE, "prov", "Healthcare Provider")]

# Location types (v3-RoleCode)
LOC_CLINIC = [concept(ROLE_CODE, "GIM", "General internal medicine clinic")]
LOC_PEDIATRIC = [concept(ROLE_CODE, "PEDC", "Pediatrics clinic")]
LOC_ER = [concept(ROLE_CODE, "ER", "Emergency room")]
LOC_WARD = [concept(ROLE_CODE, "HOSP", "Hospital")]

# --- encounters ------------------------------------------------------------------------------
CLASS_AMB = coding(ACT_CODE, "AMB", "ambulatory")
CLASS_EMER = coding(ACT_CODE, "EMER", "emergency")
CLASS_IMP = coding(ACT_CODE, "IMP", "inpatient encounter")

ENC_WELL_CHILD = [concept(SNOMED, "410620009", "Well child visit (procedure)")]
ENC_GENERAL_EXAM = [concept(SNOMED, "162673000", "General examination of patient (procedure)")]
ENC_FOLLOW_UP = [concept(SNOMED, "390906007", "Follow-up encounter (procedure)")]
ENC_SYMPTOM = [concept(SNOMED, "185345009", "Encounter for symptom (procedure)")]
ENC_PROBLEM = [concept(SNOMED, "185347001", "Encounter for problem (procedure)")]
ENC_EMERGENCY = [concept(SNOMED, "50849002", "Emergency room admission (procedure)")]
ENC_INPATIENT = [concept(SNOMED, "32485007", "Hospital admission (procedure)")]

#: (code, display, weight) for inpatient discharges of surviving patients.
DISCHARGE_DISPOSITIONS: tuple[tuple[str, str, float], ...] = (
    ("home", "Home", 0.68),
    ("snf", "Skilled nursing facility", 0.10),
    ("rehab", "Rehab", 0.05),
    ("other-hcf", "Other healthcare facility", 0.05),
    ("hosp", "Hospice", 0.02),
    ("aadvice", "Left against advice", 0.03),
    ("alt-home", "Alternative home", 0.03),
    ("long", "Long-term care", 0.04),
)
DISCHARGE_CONCEPTS: tuple[JSON, ...] = tuple(
    concept(DISCHARGE, c, d) for c, d, _ in DISCHARGE_DISPOSITIONS
)
DISCHARGE_WEIGHTS: tuple[float, ...] = tuple(w for _, _, w in DISCHARGE_DISPOSITIONS)
DISCHARGE_EXPIRED = concept(DISCHARGE, "exp", "Expired")

# --- conditions ------------------------------------------------------------------------------
CLINICAL_ACTIVE = concept(COND_CLINICAL, "active", "Active")
CLINICAL_RESOLVED = concept(COND_CLINICAL, "resolved", "Resolved")
VERIFICATION_CONFIRMED = concept(COND_VERIFICATION, "confirmed", "Confirmed")
VERIFICATION_PROVISIONAL = concept(COND_VERIFICATION, "provisional", "Provisional")
CATEGORY_ENCOUNTER_DX = [concept(COND_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")]
CATEGORY_PROBLEM_LIST = [concept(COND_CATEGORY, "problem-list-item", "Problem List Item")]


@dataclass(frozen=True, slots=True)
class Medication:
    """A drug the generator prescribes (RxNorm)."""

    code: str
    display: str
    concept: JSON
    dosage: JSON  # one dosageInstruction entry
    units_per_day: int
    quantity_unit: JSON  # Quantity without value: unit (+ system/code)


def _medication(
    code: str, display: str, text: str, timing: JSON, per_day: int, unit: JSON, prn: bool = False
) -> Medication:
    dosage: JSON = {"sequence": 1, "text": text, "timing": timing}
    if prn:
        dosage["asNeededBoolean"] = True
    return Medication(code, display, concept(RXNORM, code, display), dosage, per_day, unit)


_DAILY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
_TWICE_DAILY = {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}
_Q6H = {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}}
_TABLET = {"unit": "tablet", "system": DRUG_FORM, "code": "TAB"}
_INHALER = {"unit": "inhaler"}

METFORMIN = _medication(
    "860975",
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    "Take 1 tablet by mouth once daily with the evening meal",
    _DAILY,
    1,
    _TABLET,
)
LISINOPRIL = _medication(
    "314076",
    "lisinopril 10 MG Oral Tablet",
    "Take 1 tablet by mouth once daily",
    _DAILY,
    1,
    _TABLET,
)
AMLODIPINE = _medication(
    "197361",
    "amlodipine 5 MG Oral Tablet",
    "Take 1 tablet by mouth once daily",
    _DAILY,
    1,
    _TABLET,
)
ATORVASTATIN = _medication(
    "617312",
    "atorvastatin 10 MG Oral Tablet",
    "Take 1 tablet by mouth once daily at bedtime",
    _DAILY,
    1,
    _TABLET,
)
ALBUTEROL = _medication(
    "745679",
    "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
    "Inhale 2 puffs every 4 to 6 hours as needed for wheezing",
    _Q6H,
    0,  # one inhaler lasts a 30-day supply
    _INHALER,
    prn=True,
)
FLUTICASONE_SALMETEROL = _medication(
    "896209",
    "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder "
    "Inhaler",
    "Inhale 1 puff twice daily",
    _TWICE_DAILY,
    0,
    _INHALER,
)
IBUPROFEN = _medication(
    "310965",
    "Ibuprofen 200 MG Oral Tablet",
    "Take 1 tablet by mouth every 6 hours as needed",
    _Q6H,
    2,
    _TABLET,
    prn=True,
)
ACETAMINOPHEN = _medication(
    "313782",
    "Acetaminophen 325 MG Oral Tablet",
    "Take 2 tablets by mouth every 6 hours as needed",
    _Q6H,
    2,
    _TABLET,
    prn=True,
)


@dataclass(frozen=True, slots=True)
class ConditionDef:
    """A condition the generator diagnoses (SNOMED CT)."""

    key: str
    code: str
    display: str
    concept: JSON
    medications: tuple[Medication, ...] = ()
    resolve_days: tuple[int, int] = (0, 0)  # acute: days from onset to abatement
    procedures: tuple[JSON, ...] = ()  # procedure code concepts done for it (acute)


def _condition(
    key: str,
    code: str,
    display: str,
    meds: tuple[Medication, ...] = (),
    resolve: tuple[int, int] = (0, 0),
    procedures: tuple[JSON, ...] = (),
) -> ConditionDef:
    return ConditionDef(
        key, code, display, concept(SNOMED, code, display), meds, resolve, procedures
    )


# --- procedures ----------------------------------------------------------------------------
PROC_MED_RECONCILIATION = concept(SNOMED, "430193006", "Medication reconciliation (procedure)")
PROC_DEPRESSION_SCREEN = concept(SNOMED, "171207006", "Depression screening (procedure)")
PROC_NEEDS_ASSESSMENT = concept(
    SNOMED, "710824005", "Assessment of health and social care needs (procedure)"
)
PROC_COLONOSCOPY = concept(SNOMED, "73761001", "Colonoscopy (procedure)")
PROC_ECG = concept(SNOMED, "29303009", "Electrocardiographic procedure")
PROC_CHEST_XRAY = concept(SNOMED, "399208008", "Plain X-ray of chest (procedure)")
PROC_CT = concept(SNOMED, "77477000", "Computerized axial tomography (procedure)")
PROC_SUTURE = concept(SNOMED, "288086009", "Suture open wound (procedure)")
PROC_OXYGEN = concept(SNOMED, "371908008", "Oxygen administration by mask (procedure)")
PROC_ECHO = concept(SNOMED, "433236007", "Transthoracic echocardiography (procedure)")
PROC_HIP_REPLACEMENT = concept(SNOMED, "52734007", "Total replacement of hip (procedure)")
PROC_SPIROMETRY = concept(SNOMED, "127783003", "Spirometry (procedure)")
PROC_HEMODIALYSIS = concept(SNOMED, "302497006", "Hemodialysis (procedure)")

# Chronic conditions (onset probabilities live in clinical.py).
DIABETES = _condition("diabetes", "44054006", "Diabetes mellitus type 2 (disorder)", (METFORMIN,))
HYPERTENSION = _condition(
    "hypertension", "38341003", "Hypertensive disorder, systemic arterial (disorder)"
)
HYPERLIPIDEMIA = _condition(
    "hyperlipidemia", "55822004", "Hyperlipidemia (disorder)", (ATORVASTATIN,)
)
ASTHMA = _condition("asthma", "195967001", "Asthma (disorder)", (ALBUTEROL,))
COPD = _condition(
    "copd",
    "13645005",
    "Chronic obstructive lung disease (disorder)",
    (FLUTICASONE_SALMETEROL,),
    procedures=(PROC_SPIROMETRY,),
)
CKD = _condition("ckd", "709044004", "Chronic kidney disease (disorder)")
OBESITY = _condition("obesity", "162864005", "Body mass index 30+ - obesity (finding)")
CHRONIC_CONDITIONS: tuple[ConditionDef, ...] = (
    DIABETES,
    HYPERTENSION,
    HYPERLIPIDEMIA,
    ASTHMA,
    COPD,
    CKD,
    OBESITY,
)
CHRONIC_BY_KEY: dict[str, ConditionDef] = {c.key: c for c in CHRONIC_CONDITIONS}

# Acute conditions seen in ambulatory "encounter for symptom" visits.
COVID19 = _condition("covid19", "840539006", "COVID-19", (ACETAMINOPHEN,), (10, 21))
ACUTE_AMBULATORY: tuple[ConditionDef, ...] = (
    _condition("sinusitis", "444814009", "Viral sinusitis (disorder)", (), (7, 21)),
    _condition("bronchitis", "10509002", "Acute bronchitis (disorder)", (ACETAMINOPHEN,), (7, 21)),
    _condition("pharyngitis", "195662009", "Acute viral pharyngitis (disorder)", (), (5, 14)),
    _condition("strep", "43878008", "Streptococcal sore throat (disorder)", (), (7, 14)),
    _condition("otitis", "65363002", "Otitis media (disorder)", (ACETAMINOPHEN,), (7, 14)),
    _condition("uti", "68566005", "Urinary tract infectious disease (disorder)", (), (5, 10)),
    _condition("ankle_sprain", "44465007", "Sprain of ankle (disorder)", (IBUPROFEN,), (14, 42)),
)
# Emergency-department conditions.
ACUTE_EMERGENCY: tuple[ConditionDef, ...] = (
    _condition("chest_pain", "29857009", "Chest pain (finding)", (), (1, 3), (PROC_ECG,)),
    _condition(
        "concussion",
        "62106007",
        "Concussion with no loss of consciousness (disorder)",
        (ACETAMINOPHEN,),
        (14, 42),
        (PROC_CT,),
    ),
    _condition(
        "clavicle_fracture",
        "58150001",
        "Fracture of clavicle (disorder)",
        (IBUPROFEN,),
        (42, 84),
        (PROC_CHEST_XRAY,),
    ),
    _condition(
        "laceration",
        "283371005",
        "Laceration of forearm (disorder)",
        (),
        (10, 21),
        (PROC_SUTURE,),
    ),
    _condition(
        "whiplash", "39848009", "Whiplash injury to neck (disorder)", (IBUPROFEN,), (14, 60)
    ),
)
# Reasons for inpatient admissions.
ACUTE_INPATIENT: tuple[ConditionDef, ...] = (
    _condition(
        "pneumonia",
        "233604007",
        "Pneumonia (disorder)",
        (),
        (14, 35),
        (PROC_CHEST_XRAY, PROC_OXYGEN),
    ),
    _condition(
        "mi",
        "22298006",
        "Myocardial infarction (disorder)",
        (),
        (28, 90),
        (PROC_ECG, PROC_ECHO),
    ),
    _condition(
        "stroke", "230690007", "Cerebrovascular accident (disorder)", (), (30, 120), (PROC_CT,)
    ),
    _condition(
        "hip_fracture",
        "359817006",
        "Closed fracture of hip (disorder)",
        (),
        (60, 120),
        (PROC_HIP_REPLACEMENT,),
    ),
    _condition("sepsis", "91302008", "Sepsis (disorder)", (), (14, 30), (PROC_OXYGEN,)),
)
COPD_EXACERBATION = _condition(
    "copd_exacerbation",
    "195951007",
    "Acute exacerbation of chronic obstructive airways disease (disorder)",
    (),
    (10, 30),
    (PROC_OXYGEN, PROC_CHEST_XRAY),
)

# --- observations ----------------------------------------------------------------------------
CATEGORY_VITAL_SIGNS = [concept(OBS_CATEGORY, "vital-signs", "Vital Signs")]
CATEGORY_LABORATORY = [concept(OBS_CATEGORY, "laboratory", "Laboratory")]


@dataclass(frozen=True, slots=True)
class ObservationDef:
    """A LOINC observation and the UCUM unit(s) it may carry."""

    code: str
    display: str
    concept: JSON
    category: list[JSON]
    unit: str  # UCUM code (also used as the human unit)
    alt_unit: str | None = None  # the one legitimate alternative unit, if any


def _observation(
    code: str, display: str, category: list[JSON], unit: str, alt: str | None = None
) -> ObservationDef:
    return ObservationDef(code, display, concept(LOINC, code, display), category, unit, alt)


OBS_BLOOD_PRESSURE = _observation(
    "85354-9", "Blood pressure panel with all children optional", CATEGORY_VITAL_SIGNS, "mm[Hg]"
)
OBS_SYSTOLIC = _observation("8480-6", "Systolic blood pressure", CATEGORY_VITAL_SIGNS, "mm[Hg]")
OBS_DIASTOLIC = _observation("8462-4", "Diastolic blood pressure", CATEGORY_VITAL_SIGNS, "mm[Hg]")
OBS_HEART_RATE = _observation("8867-4", "Heart rate", CATEGORY_VITAL_SIGNS, "/min")
OBS_BMI = _observation("39156-5", "Body mass index (BMI) [Ratio]", CATEGORY_VITAL_SIGNS, "kg/m2")
OBS_WEIGHT = _observation("29463-7", "Body weight", CATEGORY_VITAL_SIGNS, "kg", "[lb_av]")
OBS_HEIGHT = _observation("8302-2", "Body height", CATEGORY_VITAL_SIGNS, "cm")
OBS_HBA1C = _observation(
    "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", CATEGORY_LABORATORY, "%"
)
OBS_GLUCOSE = _observation(
    "2339-0", "Glucose [Mass/volume] in Blood", CATEGORY_LABORATORY, "mg/dL", "mmol/L"
)

#: LOINC code -> every UCUM code that is legitimate for it (used by tests and defects).
VALID_UNITS: dict[str, frozenset[str]] = {
    d.code: frozenset(u for u in (d.unit, d.alt_unit) if u)
    for d in (
        OBS_SYSTOLIC,
        OBS_DIASTOLIC,
        OBS_HEART_RATE,
        OBS_BMI,
        OBS_WEIGHT,
        OBS_HEIGHT,
        OBS_HBA1C,
        OBS_GLUCOSE,
    )
}
#: LOINC code -> a unit that is plainly wrong for it (planted by the wrong_unit_for_loinc defect).
WRONG_UNITS: dict[str, str] = {
    "8867-4": "kg",
    "2339-0": "mm[Hg]",
    "29463-7": "/min",
    "8302-2": "kg",
    "39156-5": "/min",
    "4548-4": "mg/dL",
}
LB_PER_KG = 2.20462
MG_DL_PER_MMOL_L = 18.016

# --- immunizations (CVX) ------------------------------------------------------------------
VAX_FLU = concept(CVX, "140", "Influenza, seasonal, injectable, preservative free")
VAX_COVID = concept(
    CVX,
    "208",
    "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
)
VAX_TD = concept(CVX, "113", "Td (adult) preservative free")
VAX_TDAP = concept(CVX, "115", "Tdap")
VAX_DTAP = concept(CVX, "20", "DTaP")
VAX_IPV = concept(CVX, "10", "IPV")
VAX_HEPB = concept(CVX, "08", "Hep B, adolescent or pediatric")
VAX_PCV13 = concept(CVX, "133", "Pneumococcal conjugate PCV 13")
VAX_MMR = concept(CVX, "03", "MMR")
VAX_VARICELLA = concept(CVX, "21", "varicella")
VAX_HPV = concept(CVX, "62", "HPV, quadrivalent")
VAX_PPSV23 = concept(CVX, "33", "pneumococcal polysaccharide vaccine, 23 valent")

# --- allergies -------------------------------------------------------------------------------
ALLERGY_ACTIVE = concept(ALLERGY_CLINICAL, "active", "Active")
ALLERGY_INACTIVE = concept(ALLERGY_CLINICAL, "inactive", "Inactive")
ALLERGY_CONFIRMED = concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed")
ALLERGY_UNCONFIRMED = concept(ALLERGY_VERIFICATION, "unconfirmed", "Unconfirmed")

#: (code concept, category)
ALLERGENS: tuple[tuple[JSON, str], ...] = (
    (concept(SNOMED, "764146007", "Penicillin (substance)"), "medication"),
    (concept(SNOMED, "387458008", "Aspirin (substance)"), "medication"),
    (concept(SNOMED, "256349002", "Peanut - dietary (substance)"), "food"),
    (concept(SNOMED, "102263004", "Eggs (edible) (substance)"), "food"),
    (concept(SNOMED, "256277009", "Grass pollen (substance)"), "environment"),
    (concept(SNOMED, "260147004", "House dust mite (organism)"), "environment"),
    (concept(SNOMED, "111088007", "Latex (substance)"), "environment"),
    (concept(SNOMED, "264287008", "Animal dander (substance)"), "environment"),
)
REACTIONS: tuple[JSON, ...] = (
    concept(SNOMED, "247472004", "Wheal (finding)"),
    concept(SNOMED, "271807003", "Eruption of skin (disorder)"),
    concept(SNOMED, "267036007", "Dyspnea (finding)"),
    concept(SNOMED, "418290006", "Itching (finding)"),
    concept(SNOMED, "39579001", "Anaphylaxis (disorder)"),
)

# --- people ----------------------------------------------------------------------------------
FAMILY_NAMES: tuple[str, ...] = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Kulas",
    "Schaefer",
    "Kshlerin",
    "Bartoletti",
    "Runolfsson",
    "Ortiz",
    "Chen",
    "Patel",
    "Kim",
    "Okafor",
)
GIVEN_FEMALE: tuple[str, ...] = (
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Lisa",
    "Nancy",
    "Betty",
    "Sandra",
    "Margaret",
    "Ashley",
    "Kimberly",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Laura",
    "Sharon",
    "Cynthia",
    "Amy",
    "Olivia",
    "Emma",
    "Ava",
    "Sophia",
    "Mia",
)
GIVEN_MALE: tuple[str, ...] = (
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Christopher",
    "Charles",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Andrew",
    "Paul",
    "Joshua",
    "Kenneth",
    "Kevin",
    "Brian",
    "George",
    "Timothy",
    "Ronald",
    "Jason",
    "Edward",
    "Jeffrey",
    "Ryan",
    "Liam",
    "Noah",
    "Elijah",
    "Lucas",
    "Mateo",
)
STREET_NAMES: tuple[str, ...] = (
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Main",
    "Church",
    "Walnut",
    "Sunset",
    "Highland",
    "Mill",
    "River",
    "Spring",
    "Chestnut",
    "Franklin",
    "Ridge",
)
STREET_SUFFIXES: tuple[str, ...] = ("Street", "Avenue", "Road", "Lane", "Drive", "Way", "Court")
#: (city, state, 3-digit ZIP prefix)
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Boston", "MA", "021"),
    ("Worcester", "MA", "016"),
    ("Springfield", "MA", "011"),
    ("Cambridge", "MA", "021"),
    ("Lowell", "MA", "018"),
    ("Providence", "RI", "029"),
    ("Hartford", "CT", "061"),
    ("Portland", "ME", "041"),
    ("Manchester", "NH", "031"),
    ("Burlington", "VT", "054"),
    ("Albany", "NY", "122"),
    ("Newark", "NJ", "071"),
    ("Philadelphia", "PA", "191"),
    ("Pittsburgh", "PA", "152"),
    ("Baltimore", "MD", "212"),
    ("Richmond", "VA", "232"),
    ("Columbus", "OH", "432"),
    ("Chicago", "IL", "606"),
    ("Denver", "CO", "802"),
    ("Austin", "TX", "787"),
)
ORG_NAME_STEMS: tuple[str, ...] = (
    "Riverside",
    "Lakeview",
    "Hillcrest",
    "Mercy",
    "St. Anne",
    "Greenfield",
    "Northgate",
    "Bayside",
    "Summit",
    "Pioneer",
    "Valley",
    "Harbor",
    "Fairview",
    "Brookside",
    "Crestwood",
)
