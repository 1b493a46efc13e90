{# Incremental filter: raw rows merged by a dlt load newer than the newest load this model holds. #}
{#
    For the incremental staging models. The loader merges raw tables in place (one row per key),
    and every row it writes carries the _dlt_load_id of the load that wrote it: dlt's package
    id, the load's start time in epoch seconds. So "new or changed since the last build" is
    "_dlt_load_id greater than the greatest one already in this model". Filtering on the load,
    never on meta.lastUpdated, lets late-arriving data (an old lastUpdated delivered today)
    through; older versions never reach the raw tables (the loader's version filter).

    var('incremental_lookback_hours') reaches further back: rows of loads that started up to
    that many hours before the newest processed load are read again. That is only needed when
    loads can commit out of id order (several loaders writing to one warehouse at once: a load
    that started earlier commits after a later one was already built); with one loader at a
    time (cron) 0 is exact. Reading a row again is harmless: the models replace rows by key.

    Load ids are compared as numbers (double) so the lookback can be subtracted; ids one
    microsecond apart stay distinct. An empty model reads everything. this_load_id_column names
    the model's own load id column when it is not `_dlt_load_id` (row_lineage: `load_id`).
#}
{% macro fhir_loaded_since_last_build(load_id_column='_dlt_load_id', this_load_id_column='_dlt_load_id') -%}
    {%- set lookback_seconds = (var('incremental_lookback_hours', 0) | float) * 3600 -%}
    cast({{ load_id_column }} as double) > (
        select coalesce(max(cast({{ this_load_id_column }} as double)), 0) - {{ lookback_seconds }}
        from {{ this }}
    )
{%- endmacro %}
