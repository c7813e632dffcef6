async def test_create_and_read_party(crm):
    admin = await crm.user("admin")
    r = await crm.post("/api/parties", admin, json={"name": "Acme"})
    assert r.status_code == 201, r.text
    party = r.json()
    r = await crm.get(f"/api/parties/{party['id']}", admin)
    assert r.status_code == 200
    assert r.json()["name"] == "Acme"
    assert r.headers["etag"] == '"1"'
