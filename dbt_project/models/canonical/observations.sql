{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='observation_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__observations'), 'observation_source_key', 'coalesce(panel_observation_key, observation_key)') }}",
    )
}}

with

observations as (

    select * from {{ ref('stg_fhir__observations') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

observation_components as (

    select * from {{ ref('stg_fhir__observation_components') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

loinc_units as (

    select * from {{ ref('loinc_units') }}

),

panels as (

    -- observations whose values are in their components (e.g. the blood pressure panel)
    select distinct observation_source_key
    from observation_components

),

own_values as (

    -- an observation's own value; a panel is kept only if it also has a value of its own
    select
        observations.observation_source_key as value_source_key,
        cast(null as varchar) as panel_source_key,
        cast(null as integer) as component_index,
        observations.source_system,
        observations.patient_id,
        observations.encounter_id,
        observations.observation_status,
        observations.observation_category_code,
        observations.observation_code,
        observations.observation_display,
        observations.value_quantity,
        observations.value_unit_code,
        observations.value_concept_code,
        observations.value_concept_display,
        observations.effective_at,
        observations.issued_at,
        observations.last_updated_at,
        observations._dlt_load_id
    from observations
    left join panels
        on observations.observation_source_key = panels.observation_source_key
    where
        panels.observation_source_key is null
        or observations.value_quantity is not null
        or observations.value_concept_code is not null

),

component_values as (

    select
        observation_component_source_key as value_source_key,
        observation_source_key as panel_source_key,
        component_index,
        source_system,
        patient_id,
        encounter_id,
        observation_status,
        observation_category_code,
        component_code as observation_code,
        component_display as observation_display,
        value_quantity,
        value_unit_code,
        value_concept_code,
        value_concept_display,
        effective_at,
        issued_at,
        last_updated_at,
        _dlt_load_id
    from observation_components

),

observation_values as (

    select * from own_values
    union all
    select * from component_values

),

normalised_codes as (

    -- LOINC codes with a unit rule in the seed; their values must come in a listed unit
    select distinct loinc_code
    from loinc_units

),

observation_values_normalised as (

    select
        observation_values.*,
        loinc_units.canonical_unit_code,
        -- canonical value = value x factor + offset (the offset is only non-zero for temperatures)
        observation_values.value_quantity * loinc_units.factor_to_canonical
        + loinc_units.offset_to_canonical as converted_value,
        case
            when observation_values.value_quantity is null then null
            when normalised_codes.loinc_code is null then 'not_normalised'
            when observation_values.value_unit_code is null then 'missing_unit'
            when loinc_units.loinc_code is null then 'unexpected_unit'
            when loinc_units.is_canonical_unit then 'canonical'
            else 'converted'
        end as unit_status
    from observation_values
    left join normalised_codes
        on observation_values.observation_code = normalised_codes.loinc_code
    left join loinc_units
        on
            observation_values.observation_code = loinc_units.loinc_code
            and observation_values.value_unit_code = loinc_units.unit_code

),

final as (

    select

        ---------- ids (keyed hashes; patient and encounter keys match patients / encounters)
        {{ keyed_hash('value_source_key') }} as observation_key,
        {{ keyed_hash('panel_source_key') }} as panel_observation_key,
        component_index,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        source_system,

        ---------- codes
        observation_status,
        observation_category_code,
        observation_code,
        observation_display,
        value_concept_code,
        value_concept_display,

        ---------- flags
        component_index is not null as is_component,
        coalesce(observation_category_code = 'vital-signs', false) as is_vital_sign,

        ---------- measures (normalised to one UCUM unit per LOINC code; seed loinc_units)
        case
            when unit_status in ('canonical', 'converted') then converted_value
            when unit_status = 'not_normalised' then value_quantity
        end as value_as_number,
        case
            when unit_status in ('canonical', 'converted') then canonical_unit_code
            when unit_status = 'not_normalised' then value_unit_code
        end as value_unit_code,
        unit_status,
        value_quantity as original_value,
        value_unit_code as original_unit_code,

        ---------- timestamps (UTC)
        effective_at,
        cast(effective_at as date) as effective_date,
        issued_at,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from observation_values_normalised

)

select * from final
