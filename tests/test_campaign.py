from pathlib import Path

from dripline.campaign import load_campaign

ROOT = Path(__file__).resolve().parent.parent


def test_ketamine_campaign_loads_six_steps_in_order():
    campaign = load_campaign(ROOT / "campaigns" / "ketamine-therapy")
    assert [s.number for s in campaign.steps] == [1, 2, 3, 4, 5, 6]
    assert [s.day for s in campaign.steps] == [0, 2, 4, 6, 8, 10]
    assert campaign.steps[0].send_immediately
    assert campaign.schedule.timezone == "America/Los_Angeles"


def test_step_identity_is_the_file_slug_unless_front_matter_names_it(project):
    folder = project / "campaigns" / "ketamine-therapy"
    campaign = load_campaign(folder)
    assert campaign.step_ids[:2] == ("rapid-relief", "treatment-resistant")
    assert campaign.step_by_id("treatment-resistant").number == 2
    assert campaign.step_by_id("nope") is None
    path = folder / "03-neuroplasticity.md"
    path.write_text(path.read_text().replace("day = 4", 'day = 4\nid = "brain"\nbackfill = true'))
    step = load_campaign(folder).step(3)
    assert (step.id, step.slug, step.backfill) == ("brain", "neuroplasticity", True)
    # Renumbering the files changes positions, never identities.
    path.rename(folder / "03-renamed-later.md")
    assert load_campaign(folder).step(3).id == "brain"
