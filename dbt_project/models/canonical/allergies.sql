with

allergy_intolerances as (

    select * from {{ ref('stg_fhir__allergy_intolerances') }}

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
        last_updated_at

    from allergy_intolerances

)

select * from final
