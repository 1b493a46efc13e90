with

encounters as (

    select * from {{ ref('encounters') }}

),

conditions as (

    select * from {{ ref('conditions') }}

),

observations as (

    select * from {{ ref('observations') }}

),

medication_requests as (

    select * from {{ ref('medication_requests') }}

),

medication_dispenses as (

    select * from {{ ref('medication_dispenses') }}

),

procedures as (

    select * from {{ ref('procedures') }}

),

immunizations as (

    select * from {{ ref('immunizations') }}

),

encounter_events as (

    select
        'encounter' as event_type,
        1 as event_type_order,
        encounter_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        started_at as event_at,
        case when encounter_type_code is not null then 'SNOMED CT' else 'v3-ActCode' end as event_code_system,
        coalesce(encounter_type_code, encounter_class_code) as event_code,
        coalesce(encounter_type_display, encounter_class_display) as event_display,
        encounter_status as event_status,
        cast(null as double) as value_as_number,
        cast(null as varchar) as value_unit_code
    from encounters

),

diagnosis_events as (

    select
        'diagnosis' as event_type,
        2 as event_type_order,
        condition_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        coalesce(onset_at, recorded_at) as event_at,
        case when condition_code is not null then 'SNOMED CT' else 'ICD-10-CM' end as event_code_system,
        coalesce(condition_code, icd10_code) as event_code,
        coalesce(condition_display, icd10_display) as event_display,
        clinical_status_code as event_status,
        cast(null as double) as value_as_number,
        cast(null as varchar) as value_unit_code
    from conditions

),

result_events as (

    select
        'result' as event_type,
        3 as event_type_order,
        observation_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        effective_at as event_at,
        'LOINC' as event_code_system,
        observation_code as event_code,
        observation_display as event_display,
        observation_status as event_status,
        value_as_number,
        value_unit_code
    from observations

),

procedure_events as (

    select
        'procedure' as event_type,
        4 as event_type_order,
        procedure_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        performed_started_at as event_at,
        'SNOMED CT' as event_code_system,
        procedure_code as event_code,
        procedure_display as event_display,
        procedure_status as event_status,
        cast(null as double) as value_as_number,
        cast(null as varchar) as value_unit_code
    from procedures

),

medication_order_events as (

    select
        'medication_order' as event_type,
        5 as event_type_order,
        medication_request_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        authored_at as event_at,
        'RxNorm' as event_code_system,
        medication_code as event_code,
        medication_display as event_display,
        medication_request_status as event_status,
        cast(expected_supply_days as double) as value_as_number,
        case when expected_supply_days is not null then 'd' end as value_unit_code
    from medication_requests

),

medication_dispense_events as (

    select
        'medication_dispense' as event_type,
        6 as event_type_order,
        medication_dispense_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        handed_over_at as event_at,
        'RxNorm' as event_code_system,
        medication_code as event_code,
        medication_display as event_display,
        medication_dispense_status as event_status,
        cast(days_supply as double) as value_as_number,
        case when days_supply is not null then 'd' end as value_unit_code
    from medication_dispenses

),

immunization_events as (

    select
        'immunization' as event_type,
        7 as event_type_order,
        immunization_key as event_key,
        patient_key,
        encounter_key,
        source_system,
        occurred_at as event_at,
        'CVX' as event_code_system,
        vaccine_code as event_code,
        vaccine_display as event_display,
        immunization_status as event_status,
        cast(null as double) as value_as_number,
        cast(null as varchar) as value_unit_code
    from immunizations

),

events as (

    select * from encounter_events
    union all
    select * from diagnosis_events
    union all
    select * from result_events
    union all
    select * from procedure_events
    union all
    select * from medication_order_events
    union all
    select * from medication_dispense_events
    union all
    select * from immunization_events

),

events_in_order as (

    -- undated and future-dated events cannot be placed on the timeline (dq_* tests report them)
    select
        *,
        row_number() over (
            partition by patient_key
            order by event_at, event_type_order, event_key
        ) as event_sequence
    from events
    where
        patient_key is not null
        and event_at is not null
        and event_at <= {{ as_of_timestamp() }}

),

final as (

    select
        ---------- ids
        cast(patient_key as varchar) as patient_key,
        cast(event_sequence as bigint) as event_sequence,
        cast(event_type as varchar) as event_type,
        cast(event_key as varchar) as event_key,
        cast(encounter_key as varchar) as encounter_key,
        cast(source_system as varchar) as source_system,

        ---------- when (UTC)
        cast(event_at as timestamp) as event_at,
        cast(event_at as date) as event_date,

        ---------- what
        cast(event_code_system as varchar) as event_code_system,
        cast(event_code as varchar) as event_code,
        cast(event_display as varchar) as event_display,
        cast(event_status as varchar) as event_status,
        cast(value_as_number as double) as value_as_number,
        cast(value_unit_code as varchar) as value_unit_code
    from events_in_order

)

select * from final
