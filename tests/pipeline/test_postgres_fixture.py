import psycopg


def test_postgres_fixture_is_a_real_server(postgres: str) -> None:
    with psycopg.connect(postgres) as conn:
        version = conn.execute("SELECT version()").fetchone()
    assert version is not None and version[0].startswith("PostgreSQL")
