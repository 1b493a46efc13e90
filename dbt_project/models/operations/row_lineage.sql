{#-
    Incremental (delete+insert on resource_type, resource_key): a build reads the raw rows that
    loads merged since the newest load_id this model holds (fhir_loaded_since_last_build, same
    incremental_lookback_hours as staging) and replaces those resources' rows. A raw row only
    changes with a new load id: the loader replaces it whole (a new version, a deletion mark)
    and never removes one otherwise, and what it joins is written once by the row's own run
    (landing page, request) except the run's status, written when the run ends; rows built
    while their run was still running (or without a run) are read again on every build.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['resource_type', 'resource_key'],
        on_schema_change='fail',
    )
}}

with

resources as (

    select * from {{ ref('stg_fhir__resource_lineage') }}
    {%- if is_incremental() %}
        where
            {{ fhir_loaded_since_last_build('load_id', 'load_id') }}
            or landing_file in (
                select built.landing_file from {{ this }} as built
                where built.run_status is null or built.run_status = 'running'
            )
    {%- endif %}

),

landing_pages as (

    select * from {{ ref('stg_fhir__landing_manifest') }}

),

requests as (

    select * from {{ ref('stg_fhir__request_log') }}

),

load_runs as (

    select * from {{ ref('stg_fhir__load_runs') }}

),

-- a request is logged once per HTTP attempt; the last attempt is the one that answered
final_request_attempts as (

    select * from requests
    qualify row_number() over (
        partition by source_system, request_id
        order by attempt desc
    ) = 1

),

resources_joined_to_origin as (

    select
        resources.*,
        landing_pages.sha256 as landing_file_sha256,
        landing_pages.created_at as landing_file_created_at,
        landing_pages.run_id,
        final_request_attempts.path_template as request_path_template,
        final_request_attempts.http_status as request_http_status,
        final_request_attempts.attempt as request_attempt,
        final_request_attempts.requested_at,
        load_runs.command as run_command,
        load_runs.run_status,
        load_runs.started_at as run_started_at,
        load_runs.credential_client_id as run_credential_client_id,
        load_runs.code_version as run_code_version,
        load_runs.code_commit as run_code_commit
    from resources
    left join landing_pages
        on resources.landing_file = landing_pages.landing_file
    left join final_request_attempts
        on
            resources.source_system = final_request_attempts.source_system
            and resources.request_id = final_request_attempts.request_id
    left join load_runs
        on landing_pages.run_id = load_runs.run_id

),

final as (

    select

        ---------- ids (the canonical models' <entity>_key: a keyed hash for clinical records,
        ---------- the plain source key for the directory types, as in their canonical models)
        case
            when resource_type in ('Practitioner', 'Organization', 'Location')
                then resource_source_key
            else {{ keyed_hash('resource_source_key') }}
        end as resource_key,
        source_system,
        resource_type,
        version_id,

        ---------- the raw row's load and landing page
        load_id,
        landing_file,
        landing_file_sha256,
        landing_file_created_at,

        ---------- the request (HTTP loads; file loads: <run_id>/file-<n>, no request row)
        request_id,
        request_path_template,
        request_http_status,
        request_attempt,
        requested_at,

        ---------- the run that landed the page
        run_id,
        run_command,
        run_status,
        run_started_at,
        run_credential_client_id,
        run_code_version,
        run_code_commit,

        ---------- flags
        is_deleted,

        ---------- timestamps (UTC)
        last_updated_at,
        fetched_at

    from resources_joined_to_origin

)

select * from final
