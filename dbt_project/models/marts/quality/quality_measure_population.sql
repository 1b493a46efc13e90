{%- set period_start = measurement_period('start') -%}
{%- set period_end = measurement_period('end') -%}

with

patients as (

    select * from {{ ref('patients') }}

),

encounters as (

    select * from {{ ref('encounters') }}

),

conditions as (

    select * from {{ ref('conditions') }}

),

procedures as (

    select * from {{ ref('procedures') }}

),

measure_codes as (

    select * from {{ ref('quality_measure_codes') }}

),

period_visits as (

    -- outpatient visits in the period (ambulatory, home health, virtual), newest first
    select
        patient_key,
        organization_id,
        started_at,
        row_number() over (
            partition by patient_key
            order by started_at desc, encounter_key desc
        ) as visit_recency
    from encounters
    where
        encounter_class_code in ('AMB', 'HH', 'VR')
        and coalesce(encounter_status, 'unknown') not in ('planned', 'cancelled', 'entered-in-error')
        and start_date between {{ period_start }} and {{ period_end }}

),

visit_summary as (

    select
        patient_key,
        count(*) as qualifying_visit_count,
        max(started_at) as last_qualifying_visit_at,
        max(case when visit_recency = 1 then organization_id end) as attributed_organization_id
    from period_visits
    group by 1

),

discharge_flags as (

    -- eCQM hospice logic: an inpatient discharge to hospice in the period; long-term care is
    -- approximated by a discharge to long-term care on or before the period's end
    select
        patient_key,
        max(
            case
                when discharge_disposition_code = 'hosp' and end_date between {{ period_start }} and {{ period_end }}
                    then 1
                else 0
            end
        ) as has_hospice_discharge,
        max(
            case
                when discharge_disposition_code = 'long' and end_date <= {{ period_end }} then 1 else 0
            end
        ) as has_long_term_care_discharge
    from encounters
    where is_inpatient
    group by 1

),

coded_conditions as (

    -- conditions in a measure value set, by SNOMED CT or ICD-10-CM code
    select
        conditions.patient_key,
        measure_codes.value_set,
        coalesce(conditions.onset_date, cast(conditions.recorded_at as date)) as onset_date,
        conditions.abatement_date
    from conditions
    inner join measure_codes
        on
            (
                measure_codes.code_system = '{{ var("snomed_system") }}'
                and conditions.condition_code = measure_codes.code
            )
            or (
                measure_codes.code_system = '{{ var("icd10cm_system") }}'
                and conditions.icd10_code = measure_codes.code
            )
    where coalesce(conditions.verification_status_code, 'unknown') not in ('refuted', 'entered-in-error')

),

condition_flags as (

    select
        patient_key,
        -- diabetes active at any time in the period
        max(
            case
                when
                    value_set = 'diabetes'
                    and onset_date <= {{ period_end }}
                    and coalesce(abatement_date >= {{ period_start }}, true)
                    then 1
                else 0
            end
        ) as has_diabetes,
        -- essential hypertension starting before, or in the first six months of, the period
        -- and not resolved before it
        max(
            case
                when
                    value_set = 'essential_hypertension'
                    and onset_date < {{ dbt.dateadd('month', 6, period_start) }}
                    and coalesce(abatement_date >= {{ period_start }}, true)
                    then 1
                else 0
            end
        ) as has_essential_hypertension,
        max(
            case
                when
                    value_set in ('end_stage_renal_disease', 'kidney_transplant')
                    and onset_date <= {{ period_end }}
                    then 1
                else 0
            end
        ) as has_renal_exclusion,
        max(
            case
                when value_set = 'colorectal_cancer' and onset_date <= {{ period_end }} then 1 else 0
            end
        ) as has_colorectal_exclusion
    from coded_conditions
    group by 1

),

procedure_flags as (

    select
        procedures.patient_key,
        max(
            case when measure_codes.value_set in ('dialysis', 'kidney_transplant') then 1 else 0 end
        ) as has_renal_exclusion,
        max(case when measure_codes.value_set = 'total_colectomy' then 1 else 0 end) as has_colorectal_exclusion
    from procedures
    inner join measure_codes
        on
            measure_codes.code_system = '{{ var("snomed_system") }}'
            and procedures.procedure_code = measure_codes.code
    where
        procedures.is_completed
        and procedures.performed_date <= {{ period_end }}
    group by 1

),

patients_flagged as (

    select
        patients.patient_key,
        patients.source_system,
        patients.birth_year,
        patients.deceased_date,
        -- exact at the end of a period ending on 31 December (the birthday has passed)
        extract(year from {{ period_end }}) - patients.birth_year as age_at_period_end,
        coalesce(visit_summary.qualifying_visit_count, 0) as qualifying_visit_count,
        visit_summary.last_qualifying_visit_at,
        visit_summary.attributed_organization_id,
        coalesce(condition_flags.has_diabetes, 0) = 1 as has_diabetes,
        coalesce(condition_flags.has_essential_hypertension, 0) = 1 as has_essential_hypertension,
        coalesce(discharge_flags.has_hospice_discharge, 0) = 1 as has_hospice_care,
        coalesce(discharge_flags.has_long_term_care_discharge, 0) = 1 as lives_in_long_term_care,
        greatest(
            coalesce(condition_flags.has_renal_exclusion, 0), coalesce(procedure_flags.has_renal_exclusion, 0)
        ) = 1 as has_esrd_dialysis_or_kidney_transplant,
        greatest(
            coalesce(condition_flags.has_colorectal_exclusion, 0),
            coalesce(procedure_flags.has_colorectal_exclusion, 0)
        ) = 1 as has_colorectal_cancer_or_colectomy
    from patients
    left join visit_summary
        on patients.patient_key = visit_summary.patient_key
    left join discharge_flags
        on patients.patient_key = discharge_flags.patient_key
    left join condition_flags
        on patients.patient_key = condition_flags.patient_key
    left join procedure_flags
        on patients.patient_key = procedure_flags.patient_key

),

final as (

    select
        ---------- ids
        cast(patient_key as varchar) as patient_key,
        cast(source_system as varchar) as source_system,
        cast(attributed_organization_id as varchar) as attributed_organization_id,

        ---------- period
        cast({{ period_start }} as date) as measurement_period_start,
        cast({{ period_end }} as date) as measurement_period_end,

        ---------- demographics
        cast(birth_year as integer) as birth_year,
        cast(age_at_period_end as integer) as age_at_period_end,
        cast(deceased_date as date) as deceased_date,

        ---------- visits in the period
        cast(qualifying_visit_count as bigint) as qualifying_visit_count,
        cast(last_qualifying_visit_at as timestamp) as last_qualifying_visit_at,

        ---------- clinical flags
        cast(has_diabetes as boolean) as has_diabetes,
        cast(has_essential_hypertension as boolean) as has_essential_hypertension,

        ---------- exclusion flags
        cast(has_hospice_care as boolean) as has_hospice_care,
        cast(lives_in_long_term_care as boolean) as lives_in_long_term_care,
        cast(has_esrd_dialysis_or_kidney_transplant as boolean) as has_esrd_dialysis_or_kidney_transplant,
        cast(has_colorectal_cancer_or_colectomy as boolean) as has_colorectal_cancer_or_colectomy
    from patients_flagged

)

select * from final
