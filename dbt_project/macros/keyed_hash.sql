{# Keyed SHA-256 (hex) of an expression with the secret from env var var('hash_key_env_var'). #}
{#
    Not RFC 2104 HMAC: neither DuckDB nor Snowflake has an HMAC function, so this is the
    "sandwich" construction sha256(key || '|' || value || '|' || key). Without the key the hash
    cannot be recomputed from a known MRN/id (no dictionary attack); the trailing key defeats
    length extension. Caveat: the key is rendered into compiled SQL (target/run, target/compiled,
    dbt's file log at debug level, warehouse query history), so treat those as secret-bearing;
    the scheduled workflow sets DBT_LOG_LEVEL_FILE=info and never uploads target/ or logs/.
    Rotating the key changes every key.
#}
{% macro keyed_hash(expression) -%}
    {{ return(adapter.dispatch('keyed_hash', 'fhir_elt')(expression)) }}
{%- endmacro %}

{#
    The key is read only at execution. While parsing (execute is false) dbt records the value of
    every env_var() call in the manifest it saves for partial parsing (target/partial_parse.msgpack),
    which the scheduled workflow caches between runs; a placeholder keeps the secret out of it.
    Parsed SQL is never run, so the placeholder never reaches a table.
#}
{% macro hash_key() -%}
    {%- if not execute -%}
        {{ return('key-read-at-execution') }}
    {%- endif -%}
    {%- set env_name = var('hash_key_env_var', 'FHIR_ELT_HASH_KEY') -%}
    {%- set key = env_var(env_name, '') -%}
    {%- if key == '' -%}
        {%- if execute and (var('require_hash_key', false) or target.name == 'snowflake') -%}
            {{ exceptions.raise_compiler_error('Environment variable ' ~ env_name ~ ' (the keyed-hash secret) is not set.') }}
        {%- endif -%}
        {%- set key = var('hash_key_dev_default', 'fhir-elt-dev-key-not-secret') -%}
    {%- endif -%}
    {{ return(key | replace("'", "''")) }}
{%- endmacro %}

{% macro default__keyed_hash(expression) -%}
    sha256('{{ fhir_elt.hash_key() }}' || '|' || {{ expression }} || '|' || '{{ fhir_elt.hash_key() }}')
{%- endmacro %}

{% macro duckdb__keyed_hash(expression) -%}
    sha256('{{ fhir_elt.hash_key() }}' || '|' || {{ expression }} || '|' || '{{ fhir_elt.hash_key() }}')
{%- endmacro %}

{% macro snowflake__keyed_hash(expression) -%}
    sha2('{{ fhir_elt.hash_key() }}' || '|' || {{ expression }} || '|' || '{{ fhir_elt.hash_key() }}', 256)
{%- endmacro %}
