{# on-run-end (Snowflake): PHI schemas to var phi_reader_role only, analytic schemas to var analyst_role. #}
{#
    Snowflake only; a no-op on DuckDB (no roles) and on the fakesnow target (no GRANT).
    README "PHI and the restricted schema" has the whole story; in short:

    * PHI schemas: `restricted` (tag restricted), `staging` (parsed resources, names and
      identifiers included), the data tests' schema (stored failing rows may show identifiers)
      and, with var phi_grants_on_raw_schema, the sources' schema (raw_fhir: whole resources).
      Each becomes a managed access schema (only its owner grants on its objects, so an object
      owner cannot hand out a table), the analyst role loses every privilege on the schema, on
      its tables and views and on its future tables and views, and the PHI role gets usage,
      select on all and on future tables and views. A schema-level future grant also makes
      Snowflake ignore database-level future grants in that schema, so a database-wide
      "select on future tables to role analyst" does not reach a rebuilt restricted table.
    * Analytic schemas (every other schema a model, seed or snapshot is built in: canonical,
      marts, alerts, operations, snapshots, terminology): managed access, usage and select on
      all and on future tables and views to the analyst role.
    * Restricted tables are rebuilt with `create or replace` and copy_grants false
      (dbt_project.yml), which drops every grant on the old table; dbt's grants config then
      grants select to the PHI role alone.

    A restricted model (tag restricted or meta contains_phi) built outside the restricted schema
    is a compile error, not a silent grant. Statements run as dbt's role (target.role), which
    owns the schemas it creates; raw_fhir belongs to the loaders' role, so with
    phi_grants_on_raw_schema dbt's role must own it or hold MANAGE GRANTS. Without dry_run,
    only schemas that exist are granted. dry_run: true logs the statements and runs nothing:
        dbt run-operation phi_schema_grants --args '{dry_run: true}' --target snowflake
#}
{% macro phi_schema_grants(dry_run=false) -%}
    {{ return(adapter.dispatch('phi_schema_grants', 'fhir_elt')(dry_run)) }}
{%- endmacro %}

{% macro default__phi_schema_grants(dry_run=false) -%}
    {%- if dry_run -%}
        {%- do log('phi_schema_grants: target type ' ~ target.type ~ ' has no roles; nothing to grant', info=True) -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{% macro snowflake__phi_schema_grants(dry_run=false) -%}
    {%- if not execute or fakesnow_compat_active() -%}
        {%- if dry_run -%}
            {%- do log('phi_schema_grants: the fakesnow target has no GRANT; nothing to grant', info=True) -%}
        {%- endif -%}
        {{ return('') }}
    {%- endif -%}
    {%- set statements = phi_schema_grant_statements() -%}
    {%- if dry_run -%}
        {%- for statement in statements -%}
            {%- do log('phi_schema_grants: ' ~ statement ~ ';', info=True) -%}
        {%- endfor -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(statements | join(';\n') ~ ';') }}
{%- endmacro %}

{% macro phi_schema_grant_statements() -%}
    {%- set phi_role = var('phi_reader_role') | string -%}
    {%- set analyst_role = var('analyst_role') | string -%}
    {%- for name, role in [('phi_reader_role', phi_role), ('analyst_role', analyst_role)] -%}
        {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_$]*$', role) -%}
            {{ exceptions.raise_compiler_error(
                'var ' ~ name ~ ' is not a plain Snowflake role name (letters, digits, _ and $)'
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if phi_role | upper == analyst_role | upper -%}
        {{ exceptions.raise_compiler_error('vars phi_reader_role and analyst_role name the same role') }}
    {%- endif -%}
    {%- set restricted_schema = generate_schema_name('restricted', none) | trim | lower -%}

    {#- classify every schema the project builds in (models, seeds, snapshots, tests) -#}
    {%- set phi_schemas = {} -%}
    {%- set analytic_schemas = {} -%}
    {%- set built_types = ('model', 'seed', 'snapshot', 'test') -%}
    {%- for node in graph.nodes.values()
        if node.package_name == project_name and node.resource_type in built_types -%}
        {%- set schema = node.database ~ '.' ~ node.schema -%}
        {%- set is_restricted = 'restricted' in node.tags or node.config.meta.get('contains_phi', false) -%}
        {%- if is_restricted and node.resource_type != 'test'
            and node.schema | lower != restricted_schema -%}
            {{ exceptions.raise_compiler_error(
                node.resource_type ~ ' ' ~ node.name ~ ' is restricted (tag restricted or meta '
                ~ 'contains_phi) but builds in schema ' ~ node.schema ~ ', not ' ~ restricted_schema
            ) }}
        {%- endif -%}
        {%- if is_restricted or node.resource_type == 'test' or node.fqn[1] in ('staging', 'restricted') -%}
            {%- do phi_schemas.update({schema | lower: schema}) -%}
        {%- else -%}
            {%- do analytic_schemas.update({schema | lower: schema}) -%}
        {%- endif -%}
    {%- endfor -%}
    {#- and the schemas it reads from: the loaders' raw schema -#}
    {%- if var('phi_grants_on_raw_schema', true) -%}
        {%- for source in graph.sources.values() if source.package_name == project_name -%}
            {%- set schema = source.database ~ '.' ~ source.schema -%}
            {%- do phi_schemas.update({schema | lower: schema}) -%}
        {%- endfor -%}
    {%- endif -%}
    {#- a schema holding PHI is never analytic, whatever else it holds -#}
    {%- for key in phi_schemas -%}
        {%- do analytic_schemas.pop(key, none) -%}
    {%- endfor -%}

    {%- set statements = [] -%}
    {%- for key, schema in phi_schemas | dictsort -%}
        {%- do statements.append('create schema if not exists ' ~ schema ~ ' with managed access') -%}
        {%- do statements.append('alter schema ' ~ schema ~ ' enable managed access') -%}
        {%- do statements.append('revoke all privileges on schema ' ~ schema ~ ' from role ' ~ analyst_role) -%}
        {%- for objects in ('tables', 'views') -%}
            {%- for scope in ('all', 'future') -%}
                {%- do statements.append(
                    'revoke all privileges on ' ~ scope ~ ' ' ~ objects ~ ' in schema ' ~ schema
                    ~ ' from role ' ~ analyst_role
                ) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- do statements.append('grant usage on schema ' ~ schema ~ ' to role ' ~ phi_role) -%}
        {%- for objects in ('tables', 'views') -%}
            {%- for scope in ('all', 'future') -%}
                {%- do statements.append(
                    'grant select on ' ~ scope ~ ' ' ~ objects ~ ' in schema ' ~ schema ~ ' to role ' ~ phi_role
                ) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for key, schema in analytic_schemas | dictsort -%}
        {%- do statements.append('create schema if not exists ' ~ schema ~ ' with managed access') -%}
        {%- do statements.append('alter schema ' ~ schema ~ ' enable managed access') -%}
        {%- do statements.append('grant usage on schema ' ~ schema ~ ' to role ' ~ analyst_role) -%}
        {%- for objects in ('tables', 'views') -%}
            {%- for scope in ('all', 'future') -%}
                {%- do statements.append(
                    'grant select on ' ~ scope ~ ' ' ~ objects ~ ' in schema ' ~ schema ~ ' to role ' ~ analyst_role
                ) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}
