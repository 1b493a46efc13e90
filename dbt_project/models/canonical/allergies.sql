{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='allergy_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__allergy_intolerances'), 'allergy_intolerance_source_key', 'allergy_key') }}",
    )
}}

with

allergy_intolerances as (

    select * from {{ ref('stg_fhir__allergy_intolerances') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

final as (

    select

        ---------- ids (keyed hashes; patient and encounter keys match patients / encounters)
        {{ keyed_hash('allergy_intolerance_source_key') }} as allergy_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        source_system,

        ---------- codes
        clinical_status_code,
        verification_status_code,
        allergy_type,
        allergy_category,
        criticality,
        allergen_code,
        allergen_display,
        allergen_rxnorm_code,
        reaction_code,
        reaction_display,
        reaction_severity,

        ---------- flags
        coalesce(clinical_status_code = 'active', false) as is_active,
        coalesce(criticality = 'high', false) as is_high_criticality,

        ---------- timestamps (UTC)
        onset_at,
        recorded_at,
        cast(recorded_at as date) as recorded_date,
        last_occurred_at,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from allergy_intolerances

)

select * from final
