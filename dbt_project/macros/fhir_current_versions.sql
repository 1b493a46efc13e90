{# The current version of each resource in a raw relation: one row per key, deleted ones dropped. #}
{#
    Orders versions by the loader's version_sort_key (meta.lastUpdated, then meta.versionId,
    then content hash; see loaders/resources.py), so dbt and the loader agree on which version
    is current. The raw tables already hold one row per key; this keeps staging correct if a
    relation ever holds several (a replay table, a history export). The is_deleted condition
    sits in QUALIFY, after the ranking, so a deleted latest version hides the older ones.
#}
{% macro fhir_current_versions(relation) -%}
    select *
    from {{ relation }}
    qualify
        row_number() over (
            partition by source_system, id
            order by version_sort_key desc
        ) = 1
        and not coalesce(is_deleted, false)
{%- endmacro %}
