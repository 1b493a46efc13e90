{# A warn_if / error_if condition on a rate: more failing rows than `rate` x the rows the test checked. #}
{#
    dbt compares warn_if / error_if with the failure count (`count(*)` over the test's rows) in
    SQL: `<fail_calc> <condition>`. The project's domain tests return a `checked_rows` column
    (the rule's denominator, the same on every row), so this condition makes a threshold a
    share rather than a count, and failures still report the exact number of offending rows:

        config:
          error_if: "{{ rate_above(var('dq_error_rate')) }}"   # renders > 0.1 * coalesce(max(checked_rows), 0)

    Only with severity error (the default): dbt never evaluates error_if on a severity-warn test.
#}
{% macro rate_above(rate) -%}
    {%- if rate is none or (rate | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error('rate_above: a rate between 0 and 1 is required') }}
    {%- endif -%}
    > {{ rate }} * coalesce(max(checked_rows), 0)
{%- endmacro %}
