{#-
    Incremental (delete+insert on patient_key): only the patients whose events changed are
    renumbered. The pre-hook deletes every row of each patient whose stored rows differ from
    its current events; this model then numbers the patients with events and no rows
    (macros/patient_timeline_events.sql). A full build numbers every patient.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='patient_key',
        on_schema_change='fail',
        pre_hook="{{ patient_timeline_delete_changed_patients() }}",
    )
}}

with

events as (

    -- encounters, diagnoses, results, procedures, medication orders and dispenses,
    -- immunizations: the dated, past events with a patient
    {{ patient_timeline_events() }}

),

events_in_order as (

    select
        *,
        row_number() over (
            partition by patient_key
            order by event_at, event_type_order, event_key
        ) as event_sequence
    from events
    {%- if is_incremental() %}
        -- patients the pre-hook removed (an event changed, came, went) and new patients
        where patient_key not in (select stored.patient_key from {{ this }} as stored)
    {%- endif %}

),

final as (

    select
        ---------- ids
        patient_key,
        cast(event_sequence as bigint) as event_sequence,
        event_type,
        event_key,
        encounter_key,
        source_system,

        ---------- when (UTC)
        event_at,
        event_date,

        ---------- what
        event_code_system,
        event_code,
        event_display,
        event_status,
        value_as_number,
        value_unit_code
    from events_in_order

)

select * from final
