{#-
    Keyed pseudonym of a personal value: hex HMAC-SHA256 (RFC 2104) of the UTF-8 value
    under var('pseudonymization_key'), written with PostgreSQL's built-in sha256() so it
    needs no extension. The same value always gives the same pseudonym under one key (joins
    keep working), and without the key the value cannot be recovered by hashing guesses.

    The key comes from var('pseudonymization_key'), by default from the environment
    variable DW_PSEUDONYMIZATION_KEY; the built-in fallback is for the demo only and must
    be overridden anywhere real personal data is loaded.
-#}
{% macro pseudonymization_key() %}
    {#- an empty variable (e.g. a blank line in .env) counts as unset -#}
    {{- return(var('pseudonymization_key',
                   env_var('DW_PSEUDONYMIZATION_KEY', '') or 'demo-only-pseudonymization-key')) -}}
{% endmacro %}

{% macro hmac_key_pad(pad_byte) %}
    {#- The key (hashed when longer than the 64-byte block), zero-padded to 64 bytes and
        XOR-ed byte by byte with pad_byte. -#}
    (
        select decode(string_agg(lpad(to_hex(get_byte(padded.key_block, i) + {{ pad_byte }} - 2 * (get_byte(padded.key_block, i) & {{ pad_byte }})), 2, '0'), '' order by i), 'hex')
        from (
            select
                key_bytes || decode(repeat('00', 64 - length(key_bytes)), 'hex') as key_block
            from (
                select
                    case
                        when length(raw_key) > 64 then sha256(raw_key)
                        else raw_key
                    end as key_bytes
                from (
                    select convert_to('{{ pseudonymization_key() | replace("'", "''") }}', 'UTF8') as raw_key
                ) as given
            ) as hashed
        ) as padded
        cross join generate_series(0, 63) as i
    )
{% endmacro %}

{% macro pseudonymize(column) %}
    case
        when {{ column }} is not null then
            encode(
                sha256(
                    {{ hmac_key_pad(92) }}
                    || sha256({{ hmac_key_pad(54) }} || convert_to({{ column }}, 'UTF8'))
                ),
                'hex'
            )
    end
{% endmacro %}
