"""The guide's content, one module (or a few) per domain; DOMAINS keeps the guide's order.

The first seven domains are those of the seed guide, the last eight follow the reference taxonomy.
"""

from __future__ import annotations

from tools.guide.domains import (
    agriculture,
    civil_affairs,
    commerce,
    discipline,
    economy,
    education_1,
    education_2,
    environment,
    health,
    labour_1,
    labour_2,
    land_resources,
    party_government,
    politics_law,
    science_it,
    transport,
    urban_1,
    urban_2,
    urban_3,
)
from tools.guide.model import D

DOMAINS: tuple[D, ...] = (
    D(
        "urban_rural_construction",
        "城乡建设",
        "Urban and rural construction",
        urban_1.CATEGORIES + urban_2.CATEGORIES + urban_3.CATEGORIES,
    ),
    D("environment", "环境保护", "Environmental protection", environment.CATEGORIES),
    D("transport", "交通运输", "Transport", transport.CATEGORIES),
    D(
        "labour_social_security",
        "劳动和社会保障",
        "Labour and social security",
        labour_1.CATEGORIES + labour_2.CATEGORIES,
    ),
    D("commerce_tourism", "商贸旅游", "Commerce and tourism", commerce.CATEGORIES),
    D("health", "卫生计生", "Health and family planning", health.CATEGORIES),
    D(
        "education_culture_sports",
        "教育文体",
        "Education, culture and sports",
        education_1.CATEGORIES + education_2.CATEGORIES,
    ),
    D("party_government", "党务政务", "Party and government affairs", party_government.CATEGORIES),
    D("land_resources", "国土资源", "Land and natural resources", land_resources.CATEGORIES),
    D("discipline_inspection", "纪检监察", "Discipline inspection and supervision", discipline.CATEGORIES),
    D("economic_management", "经济管理", "Economic management", economy.CATEGORIES),
    D("science_technology_it", "科技与信息产业", "Science, technology and information industry", science_it.CATEGORIES),
    D("civil_affairs", "民政", "Civil affairs", civil_affairs.CATEGORIES),
    D("agriculture_rural", "农村农业", "Agriculture and rural affairs", agriculture.CATEGORIES),
    D("politics_law", "政法", "Politics and law", politics_law.CATEGORIES),
)
