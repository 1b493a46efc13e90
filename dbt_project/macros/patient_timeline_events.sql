{# The events patient_timeline places, and the pre-hook of its incremental build. #}
{#
    patient_timeline_events(): one row per event that can be placed on a timeline (a patient, a
    time, not after "now"), in the mart's column types, without event_sequence; event_type_order
    orders events of one instant. The model reads it, and so does its pre-hook, so both compare
    the same rows.

    patient_timeline_delete_changed_patients(): event_sequence numbers a patient's events, so a
    changed, new, gone or newly past event renumbers that patient's timeline. The pre-hook
    compares the stored rows with the current events (whole rows but event_sequence, by hash)
    and deletes every row of each patient on either side of a difference; the model then
    numbers every patient with events and no row left (those, and new patients). Comparing
    rows needs no watermark: late-arriving data, deletes, out-of-order versions and the move of
    "now" are all differences. Renders nothing on a full build.
#}
{% macro patient_timeline_events() -%}
    select
        event_type_order,
        cast(patient_key as varchar) as patient_key,
        cast(event_type as varchar) as event_type,
        cast(event_key as varchar) as event_key,
        cast(encounter_key as varchar) as encounter_key,
        cast(source_system as varchar) as source_system,
        cast(event_at as timestamp) as event_at,
        cast(event_at as date) as event_date,
        cast(event_code_system as varchar) as event_code_system,
        cast(event_code as varchar) as event_code,
        cast(event_display as varchar) as event_display,
        cast(event_status as varchar) as event_status,
        cast(value_as_number as double) as value_as_number,
        cast(value_unit_code as varchar) as value_unit_code
    from (
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
        from {{ ref('encounters') }}
        union all
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
        from {{ ref('conditions') }}
        union all
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
        from {{ ref('observations') }}
        union all
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
        from {{ ref('procedures') }}
        union all
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
        from {{ ref('medication_requests') }}
        union all
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
        from {{ ref('medication_dispenses') }}
        union all
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
        from {{ ref('immunizations') }}
    ) as events
    -- undated and future-dated events cannot be placed on the timeline (dq_* tests report them)
    where
        patient_key is not null
        and event_at is not null
        and event_at <= {{ fhir_elt.as_of_timestamp() }}
{%- endmacro %}

{#
    The 64-bit hash of a timeline row without event_sequence (DuckDB and Snowflake: hash() of
    the columns), from the relation alias given. Only compares rows: two different rows of one
    patient hash alike with a chance of about 2^-64.
#}
{% macro patient_timeline_row_hash(relation_alias) -%}
    {%- set columns = [
        'patient_key', 'event_type', 'event_key', 'encounter_key', 'source_system', 'event_at',
        'event_date', 'event_code_system', 'event_code', 'event_display', 'event_status',
        'value_as_number', 'value_unit_code',
    ] -%}
    hash(
        {%- for column in columns -%}
            {{ relation_alias }}.{{ column }}{{ ', ' if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}

{% macro patient_timeline_delete_changed_patients() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where patient_key in (
            select coalesce(current_events.patient_key, stored.patient_key)
            from (
                select
                    events.patient_key,
                    {{ fhir_elt.patient_timeline_row_hash('events') }} as row_hash
                from ({{ fhir_elt.patient_timeline_events() }}) as events
            ) as current_events
            full outer join (
                select
                    timeline.patient_key,
                    {{ fhir_elt.patient_timeline_row_hash('timeline') }} as row_hash
                from {{ this }} as timeline
            ) as stored
                on
                    current_events.patient_key = stored.patient_key
                    and current_events.row_hash = stored.row_hash
            where current_events.row_hash is null or stored.row_hash is null
        )
    {%- endif -%}
{%- endmacro %}
