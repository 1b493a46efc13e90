{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='condition_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__conditions'), 'condition_source_key', 'condition_key') }}",
    )
}}

with

conditions as (

    select * from {{ ref('stg_fhir__conditions') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

final as (

    select

        ---------- ids (keyed hashes; patient and encounter keys match patients / encounters)
        {{ keyed_hash('condition_source_key') }} as condition_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        source_system,

        ---------- codes
        condition_code,
        condition_display,
        icd10_code,
        icd10_display,
        condition_category_code,
        clinical_status_code,
        verification_status_code,

        ---------- flags
        coalesce(clinical_status_code in ('active', 'recurrence', 'relapse'), false) as is_active,
        coalesce(verification_status_code = 'confirmed', false) as is_confirmed,
        coalesce(condition_category_code = 'problem-list-item', false) as is_problem_list_item,

        ---------- timestamps (UTC)
        onset_at,
        abated_at,
        recorded_at,
        cast(onset_at as date) as onset_date,
        cast(abated_at as date) as abatement_date,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from conditions

)

select * from final
