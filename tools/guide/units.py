"""The unit registry (单位名录): city departments and utilities.

The district and the street offices are not listed here: they come from the jurisdiction file.
The first twelve codes are those of the seed guide and must not change.
"""

from __future__ import annotations

from typing import Literal

UnitType = Literal["department", "utility"]

UNITS: tuple[tuple[str, str, str, UnitType], ...] = (
    ("DEPT-UM", "城市管理委员会", "City Management Commission", "department"),
    ("DEPT-HC", "住房和城乡建设委员会", "Housing and Urban-Rural Development Commission", "department"),
    ("DEPT-EE", "生态环境局", "Ecology and Environment Bureau", "department"),
    ("DEPT-TR", "交通委员会", "Transport Commission", "department"),
    ("DEPT-HRSS", "人力资源和社会保障局", "Human Resources and Social Security Bureau", "department"),
    ("DEPT-MR", "市场监督管理局", "Market Regulation Administration", "department"),
    ("DEPT-HE", "卫生健康委员会", "Health Commission", "department"),
    ("DEPT-ED", "教育委员会", "Education Commission", "department"),
    ("DEPT-PN", "规划和自然资源委员会", "Planning and Natural Resources Commission", "department"),
    ("UTIL-WATER", "自来水集团", "Water Supply Group", "utility"),
    ("UTIL-HEAT", "热力集团", "Heating Group", "utility"),
    ("UTIL-GAS", "燃气集团", "Gas Group", "utility"),
    ("DEPT-PS", "公安局", "Public Security Bureau", "department"),
    ("DEPT-TP", "公安局交通管理支队", "Traffic Police Detachment", "department"),
    ("DEPT-FIRE", "消防救援支队", "Fire and Rescue Detachment", "department"),
    ("DEPT-UE", "城市管理综合行政执法局", "Urban Management Law Enforcement Bureau", "department"),
    ("DEPT-CA", "民政局", "Civil Affairs Bureau", "department"),
    ("DEPT-MI", "医疗保障局", "Healthcare Security Administration", "department"),
    ("DEPT-HF", "住房公积金管理中心", "Housing Provident Fund Management Centre", "department"),
    ("DEPT-HX", "房屋征收办公室", "Housing Expropriation Office", "department"),
    ("DEPT-AG", "农业农村局", "Agriculture and Rural Affairs Bureau", "department"),
    ("DEPT-WA", "水务局", "Water Affairs Bureau", "department"),
    ("DEPT-FG", "园林绿化局", "Landscaping and Forestry Bureau", "department"),
    ("DEPT-CT", "文化和旅游局", "Culture and Tourism Bureau", "department"),
    ("DEPT-SP", "体育局", "Sports Bureau", "department"),
    ("DEPT-CM", "商务局", "Commerce Bureau", "department"),
    ("DEPT-EM", "应急管理局", "Emergency Management Bureau", "department"),
    ("DEPT-TAX", "税务局", "Taxation Bureau", "department"),
    ("DEPT-JU", "司法局", "Justice Bureau", "department"),
    ("DEPT-VA", "退役军人事务局", "Veterans Affairs Bureau", "department"),
    ("DEPT-DR", "发展和改革委员会", "Development and Reform Commission", "department"),
    ("DEPT-FIN", "财政局", "Finance Bureau", "department"),
    ("DEPT-EI", "经济和信息化局", "Economy and Information Technology Bureau", "department"),
    ("DEPT-ST", "科学技术局", "Science and Technology Bureau", "department"),
    ("DEPT-FS", "地方金融管理局", "Local Financial Regulatory Bureau", "department"),
    ("DEPT-SA", "国有资产监督管理委员会", "State-owned Assets Supervision and Administration Commission", "department"),
    ("DEPT-MET", "气象局", "Meteorological Bureau", "department"),
    ("DEPT-CC", "通信管理局", "Communications Administration", "department"),
    ("DEPT-POST", "邮政管理局", "Postal Administration", "department"),
    ("DEPT-CAC", "网络安全和信息化委员会办公室", "Cyberspace Affairs Office", "department"),
    ("DEPT-GS", "政务服务管理局", "Government Services Administration", "department"),
    ("DEPT-PT", "信访办公室", "Letters and Visits Office", "department"),
    ("DEPT-DI", "纪律检查委员会、监察委员会", "Commission for Discipline Inspection and Supervision", "department"),
    ("DEPT-ER", "民族宗教事务委员会", "Ethnic and Religious Affairs Commission", "department"),
    ("DEPT-CIV", "精神文明建设办公室", "Office of Civility Promotion", "department"),
    ("DEPT-TOB", "烟草专卖局", "Tobacco Monopoly Bureau", "department"),
    ("DEPT-DPF", "残疾人联合会", "Disabled Persons' Federation", "department"),
    ("DEPT-WF", "妇女联合会", "Women's Federation", "department"),
    ("DEPT-TU", "总工会", "Federation of Trade Unions", "department"),
    ("UTIL-POWER", "供电公司", "Power Supply Company", "utility"),
    ("UTIL-TEL", "基础电信运营企业", "Telecom Operators", "utility"),
    ("UTIL-BUS", "公共交通集团", "Public Transport Group", "utility"),
    ("UTIL-METRO", "轨道交通运营公司", "Metro Operating Company", "utility"),
)
