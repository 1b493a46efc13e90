{# Snowflake helper: a VARIANT expression at a path; `col:a.b[0]` for columns, get_path() otherwise. #}
{% macro snowflake_variant_path(column, path) -%}
    {%- if modules.re.match('^[A-Za-z_][A-Za-z0-9_]*([.][A-Za-z_][A-Za-z0-9_]*)?$', column | string) -%}
        {{ column }}:{{ path }}
    {%- else -%}
        get_path({{ column }}, '{{ path }}')
    {%- endif -%}
{%- endmacro %}
