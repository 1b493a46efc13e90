{# A bound of the marts' measurement period as a date literal: part = start | end (inclusive). #}
{#
    From vars measurement_period_start / measurement_period_end (ISO dates, set both), else the
    last complete calendar year before "now" (var as_of, else the run's start time): the eCQM
    convention, and the one that makes ages from birth year exact at the period's end.
    Rendered as a literal, so the same SQL runs on every engine:
        {{ measurement_period('start') }}  ->  cast('2025-01-01' as date)
#}
{% macro measurement_period(part='start') -%}
    {%- if part not in ('start', 'end') -%}
        {{ exceptions.raise_compiler_error("measurement_period: part must be start or end, got " ~ part) }}
    {%- endif -%}
    {%- set start = var('measurement_period_start', none) -%}
    {%- set end = var('measurement_period_end', none) -%}
    {%- if (start is none) != (end is none) -%}
        {{ exceptions.raise_compiler_error(
            'measurement_period: set both vars measurement_period_start and measurement_period_end, or neither'
        ) }}
    {%- endif -%}
    {%- if start is none -%}
        {%- set as_of = var('as_of', none) -%}
        {%- set year = ((as_of | string)[:4] | int) if as_of else run_started_at.year -%}
        {%- set start = (year - 1) ~ '-01-01' -%}
        {%- set end = (year - 1) ~ '-12-31' -%}
    {%- endif -%}
    {%- set start = start | string -%}
    {%- set end = end | string -%}
    {%- for value in (start, end) -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
            {{ exceptions.raise_compiler_error('measurement_period: expected an ISO date (YYYY-MM-DD), got ' ~ value) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if end < start -%}
        {{ exceptions.raise_compiler_error('measurement_period: the end ' ~ end ~ ' is before the start ' ~ start) }}
    {%- endif -%}
    cast('{{ start if part == "start" else end }}' as date)
{%- endmacro %}
