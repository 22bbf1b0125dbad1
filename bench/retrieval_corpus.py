"""The retrieval benchmark's corpus: mixed Russian/English enterprise documents and labelled queries.

Four query groups, each query labelled with the document(s) that answer it:
- `code`: an incident, invoice, contract, order or ticket number (`НЦ-4417`, `договор № 17/23-П`);
- `surname`: a person named in the document (`Петрова`, `Smith`);
- `error_code`: an error code in an IT note (`0x80070005`, `ERR_CONN_RESET`, `ORA-12541`);
- `paraphrase`: a question worded apart from its document (few words in common), Russian and English.

The first three are keyword-like and scored by hit@1; paraphrases by hit@3 (`HIT_AT`). Every
keyword-like query comes from a near-duplicate pair: two documents with the same text but for the
one term the query names, and a query for each. A code and its twin differ by one transposed pair of
adjacent digits (`НЦ-4417` / `НЦ-4471`, `INV-2024-0193` / `INV-2024-0139`); error codes are either
transposed (`0x80070005` / `0x80070050`) or siblings of one family (`ERR_CONN_RESET` /
`ERR_CONN_REFUSED`, SMTP's `5.7.1` / `5.1.7`); surnames are two people in one form letter. So the
query's term is all that tells the right document from its twin, and a family's other pairs (four
invoices, four incidents, eight HR orders) share its boilerplate, so that a query's few characters
must outweigh it. Paraphrase documents and unlabelled distractors on nearby topics
(sick leave beside vacation, say) are hand-written in `bench/data/retrieval_paraphrases.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Group = Literal["code", "surname", "error_code", "paraphrase"]
PairKind = Literal["transposed", "sibling", "surname"]

GROUPS: tuple[Group, ...] = ("code", "surname", "error_code", "paraphrase")
HIT_AT: dict[Group, int] = {"code": 1, "surname": 1, "error_code": 1, "paraphrase": 3}
KEYWORD_LIKE: tuple[Group, ...] = ("code", "surname", "error_code")
PARAPHRASES = Path(__file__).parent / "data" / "retrieval_paraphrases.json"


@dataclass(frozen=True, slots=True)
class Document:
    key: str  # under the source prefix; names no code, so that only the text can be matched
    text: str


@dataclass(frozen=True, slots=True)
class Query:
    group: Group
    text: str
    expected: tuple[str, ...]  # document keys; any one of them ranked within hit@k counts
    term: str | None = None  # the code or surname a keyword-like query turns on


@dataclass(frozen=True, slots=True)
class NearDuplicate:
    """Two documents whose texts are equal once `terms[0]` is replaced by `terms[1]`."""

    first: str
    second: str
    kind: PairKind
    terms: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Corpus:
    documents: tuple[Document, ...]
    queries: tuple[Query, ...]
    near_duplicates: tuple[NearDuplicate, ...]

    def document(self, key: str) -> Document:
        return next(document for document in self.documents if document.key == key)


@dataclass(frozen=True, slots=True)
class _Pair:
    group: Group
    kind: PairKind
    key: str  # the pair's documents are `{key}-a.md` and `{key}-b.md`
    template: str  # `{term}` where the pair differs; the rest is filled from `fill`
    terms: tuple[str, str]
    query: str  # `{term}` for the term: the same wording for both documents of the pair
    fill: tuple[tuple[str, str], ...] = ()


_INCIDENT = """# Инцидент {term}: {title}

Дата регистрации: {date}. Приоритет: {priority}. Ответственная группа: {team}.

Симптомы. {symptoms}

Принятые меры. {actions} Инцидент {term} закрыт после подтверждения инициатором.

Хронология. Заявка поступила через портал самообслуживания, первая линия поддержки собрала сведения
о рабочем месте и версии программ и передала её ответственной группе. Время реакции уложилось в норматив
соглашения об уровне сервиса; пользователь получал уведомления о смене статуса по электронной почте.
Повторное обращение по той же причине в течение 30 дней открывает заявку заново без новой регистрации."""

_INVOICE = """# Счёт {term}

Поставщик: {supplier}. Покупатель: ООО «Северный ветер», ИНН 7701234567.

{lines}

Итого к оплате: {total}, в том числе НДС 20%. Срок оплаты — {due} с даты выставления счёта {term}.
Назначение платежа обязательно указывать с номером счёта.

Банковские реквизиты поставщика: расчётный счёт в АО «Банк Развития», БИК 044525000. Счёт действителен
при наличии подписи руководителя и главного бухгалтера; оригиналы закрывающих документов — акт или
товарная накладная и счёт-фактура — передаются с курьером или через систему электронного документооборота."""

_INVOICE_EN = """# Invoice {term}

Bill to: Northwind Trading LLC, accounts payable. Supplier: {supplier}.

{lines}

Total due: {total}. Payment terms: net {due} days from the date of invoice {term}. Please quote the
invoice number on the remittance advice; late payments accrue interest at 1% per month.

Bank details: IBAN DE12 5001 0517 0648 4898 90, BIC INGDDEFFXXX. Goods remain the supplier's property until
paid in full. Disputes about quantities or prices must be raised in writing within ten days of receipt;
undisputed amounts stay payable on the original due date. VAT is reverse-charged where applicable."""

_CONTRACT = """# {kind} {term}

г. Москва, {date}.

{parties} заключили настоящий договор о нижеследующем.

1. Предмет договора. {subject}

2. Срок действия. Договор {term} вступает в силу с момента подписания и действует {period}.

3. Ответственность. За просрочку исполнения обязательств виновная сторона уплачивает неустойку в
размере {penalty} за каждый день просрочки.

4. Порядок разрешения споров. Споры решаются путём переговоров, а при недостижении согласия — в
Арбитражном суде города Москвы. Претензионный порядок обязателен, срок ответа на претензию — 15 рабочих дней.

5. Заключительные положения. Изменения действительны, если совершены в письменной форме и подписаны
уполномоченными представителями сторон. Договор составлен в двух экземплярах, по одному для каждой стороны."""

_ORDER_EN = """# {kind} {term}

{body}

Reference {term} must appear on every delivery note and on the invoice. Questions about this
{kind_lower} go to {contact}.

Standard terms apply: delivery at the supplier's risk until signed for, inspection within five working days,
and rejection of non-conforming items at the supplier's cost. Changes to quantities, prices or dates need a
written amendment approved by purchasing; verbal agreements are not binding on Northwind Trading."""

_NOTE_RU = """# {title}

Сотрудник: {term} {name}, {position}.

{body}

Основание: заявление работника.

Кадровой службе внести изменения в личную карточку и табель учёта рабочего
времени, бухгалтерии — произвести расчёты в соответствии с настоящим приказом. Контроль
исполнения приказа возложить на заместителя генерального директора по персоналу.

С приказом ознакомлен(а): {term} {initials}"""

_NOTE_EN = """# {title}

Employee: {name} {term}, {position}.

{body}

Approved by the line manager. Filed with HR on {date}; questions to hr@northwind.example.

This record is confidential and kept in the personnel file for the period set by the retention schedule.
The employee may request a copy at any time. Any change to the arrangement above requires a new form
signed by the employee, the line manager and the HR business partner."""

_ERROR_RU = """# {title}

Пользователи {who} получают ошибку {term}. {symptoms}

Причина. {cause}

Решение. {fix} После исправления ошибка {term} не воспроизводится; заявка закрыта.

Статья добавлена в базу знаний первой линии поддержки. При повторении проверьте журнал событий рабочей
станции, версию клиентского приложения и доступность сервера, затем эскалируйте заявку на вторую линию,
приложив снимки экрана и время возникновения сбоя."""

_ERROR_EN = """# {title}

Symptom: {who} fails with {term}. {symptoms}

Root cause: {cause}

Resolution: {fix} Monitoring shows no {term} since the fix.

This article is part of the service desk knowledge base. If the problem comes back, collect the event logs,
the client version and the exact time of the failure, check the service status page, and escalate to the
second line with screenshots attached. Do not reinstall the application before the logs are collected."""


def _fill(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(values.items())


_CODE_PAIRS = (
    _Pair(
        "code",
        "transposed",
        "it/incidents/vpn",
        _INCIDENT,
        ("НЦ-4417", "НЦ-4471"),
        "{term}",
        _fill(
            title="нет подключения к VPN из дома",
            date="12.03.2024",
            priority="высокий",
            team="сетевые сервисы",
            symptoms="Клиент VPN зависает на этапе проверки сертификата, затем сообщает о тайм-ауте.",
            actions="Перевыпущен сертификат пользователя, обновлён профиль клиента.",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "it/incidents/printer",
        _INCIDENT,
        ("НЦ-2093", "НЦ-2039"),
        "инцидент {term}",
        _fill(
            title="принтер на третьем этаже печатает пустые листы",
            date="02.04.2024",
            priority="низкий",
            team="поддержка рабочих мест",
            symptoms="Задания уходят в очередь, но листы выходят пустыми.",
            actions="Заменён картридж, очищена очередь печати на сервере.",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "it/incidents/mail",
        _INCIDENT,
        ("НЦ-5582", "НЦ-5528"),
        "{term}",
        _fill(
            title="письма с вложениями не доходят до контрагентов",
            date="18.04.2024",
            priority="средний",
            team="почтовые системы",
            symptoms="Письма больше 10 МБ возвращаются отправителю без пояснений.",
            actions="Увеличен лимит размера сообщения на пограничном шлюзе.",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "it/incidents/erp",
        _INCIDENT,
        ("НЦ-7160", "НЦ-7106"),
        "статус {term}",
        _fill(
            title="1С не проводит документы реализации",
            date="27.05.2024",
            priority="критический",
            team="корпоративные приложения",
            symptoms="При проведении появляется сообщение о блокировке таблицы.",
            actions="Завершены зависшие сеансы, перестроены индексы базы.",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "finance/invoices/cleaning",
        _INVOICE,
        ("INV-2024-0193", "INV-2024-0139"),
        "{term}",
        _fill(
            supplier="ООО «Чистый офис»",
            lines="Уборка офисных помещений, март — 1 месяц.",
            total="184 000 руб.",
            due="10 банковских дней",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "finance/invoices/catering",
        _INVOICE,
        ("INV-2024-0452", "INV-2024-0425"),
        "счёт {term}",
        _fill(
            supplier="ООО «Вкусный обед»",
            lines="Кейтеринг для стратегической сессии, 40 чел.",
            total="96 500 руб.",
            due="5 банковских дней",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "finance/invoices/licences",
        _INVOICE_EN,
        ("INV-2023-1187", "INV-2023-1178"),
        "invoice {term}",
        _fill(
            supplier="Brightline Software Ltd",
            lines="Annual subscription, 120 seats of the design suite.",
            total="EUR 21,600.00",
            due="30",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "finance/invoices/hardware",
        _INVOICE_EN,
        ("INV-2024-0716", "INV-2024-0761"),
        "{term}",
        _fill(
            supplier="Compute Depot GmbH",
            lines="25 docking stations, 25 monitors 27 inch.",
            total="EUR 14,975.00",
            due="45",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "legal/contracts/lease",
        _CONTRACT,
        ("№ 17/23-П", "№ 17/32-П"),
        "договор {term}",
        _fill(
            kind="Договор аренды",
            date="15 января 2023 г.",
            parties="ООО «Северный ветер» (арендатор) и АО «Бизнес-Парк» (арендодатель)",
            subject="Арендодатель передаёт во временное пользование офис площадью 420 м².",
            period="одиннадцать месяцев",
            penalty="0,1% месячной арендной платы",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "legal/contracts/supply",
        _CONTRACT,
        ("№ 45/21-У", "№ 45/12-У"),
        "договор {term}",
        _fill(
            kind="Договор оказания услуг",
            date="3 марта 2021 г.",
            parties="ООО «Северный ветер» (заказчик) и ООО «ТехСервис» (исполнитель)",
            subject="Исполнитель обслуживает инженерные системы здания заказчика.",
            period="до 31 декабря 2025 г.",
            penalty="0,05% стоимости услуг",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "legal/contracts/nda",
        _CONTRACT,
        ("ДГ-3306", "ДГ-3360"),
        "{term}",
        _fill(
            kind="Соглашение о конфиденциальности",
            date="9 сентября 2024 г.",
            parties="ООО «Северный ветер» и ИП Сорокин Д. В.",
            subject="Стороны обязуются не раскрывать третьим лицам сведения, полученные при переговорах.",
            period="три года",
            penalty="10 000 руб.",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "legal/contracts/msa",
        _ORDER_EN,
        ("MSA-2024-118", "MSA-2024-181"),
        "contract {term}",
        _fill(
            kind="Master Services Agreement",
            kind_lower="agreement",
            body="Northwind Trading engages Atlas Consulting for data platform work "
            "under statements of work; rates are fixed for the first twelve months.",
            contact="legal@northwind.example",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "purchasing/orders/chairs",
        _ORDER_EN,
        ("PO-88214", "PO-88241"),
        "{term}",
        _fill(
            kind="Purchase Order",
            kind_lower="order",
            body="Deliver 60 ergonomic office chairs, model Aeron B, to the Moscow office loading dock "
            "between 9:00 and 17:00 on a working day.",
            contact="purchasing@northwind.example",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "purchasing/orders/laptops",
        _ORDER_EN,
        ("PO-30571", "PO-30517"),
        "order {term}",
        _fill(
            kind="Purchase Order",
            kind_lower="order",
            body="Supply 18 laptops, 14-inch, 32 GB RAM, with three-year on-site warranty "
            "and the corporate image preinstalled.",
            contact="it-assets@northwind.example",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "hr/tickets/relocation",
        _ORDER_EN,
        ("HR-1024", "HR-1042"),
        "ticket {term}",
        _fill(
            kind="HR Ticket",
            kind_lower="ticket",
            body="Request to compensate relocation expenses from Kazan to Moscow: train tickets, two weeks "
            "of temporary housing and shipping of personal belongings.",
            contact="hr@northwind.example",
        ),
    ),
    _Pair(
        "code",
        "transposed",
        "products/manuals/spare-part",
        _ORDER_EN,
        ("SKU 7741-0935", "SKU 7741-0953"),
        "{term}",
        _fill(
            kind="Spare Part",
            kind_lower="part",
            body="Brew group gasket for the CM-300 coffee machine. Replace every 10,000 cups or "
            "when water leaks under the drip tray.",
            contact="service@northwind.example",
        ),
    ),
)

_SURNAME_PAIRS = (
    _Pair(
        "surname",
        "surname",
        "hr/orders/vacation",
        _NOTE_RU,
        ("Иванов", "Смирнов"),
        "{term}",
        _fill(
            title="Приказ о предоставлении ежегодного отпуска",
            name="Алексей Сергеевич",
            initials="А. С.",
            position="инженер-программист",
            body="Предоставить ежегодный оплачиваемый отпуск продолжительностью 14 календарных дней "
            "с 1 по 14 июля 2024 года.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/trip",
        _NOTE_RU,
        ("Петрова", "Кузнецова"),
        "{term}",
        _fill(
            title="Приказ о направлении в командировку",
            name="Мария Игоревна",
            initials="М. И.",
            position="менеджер по закупкам",
            body="Направить в командировку в Екатеринбург на 5 дней для переговоров с поставщиком упаковки.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/transfer",
        _NOTE_RU,
        ("Соколов", "Лебедев"),
        "приказ {term}",
        _fill(
            title="Приказ о переводе на другую должность",
            name="Дмитрий Олегович",
            initials="Д. О.",
            position="ведущий аналитик",
            body="Перевести в отдел бизнес-аналитики с 1 сентября 2024 года с сохранением оклада.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/bonus",
        _NOTE_RU,
        ("Попова", "Козлова"),
        "{term}",
        _fill(
            title="Приказ о премировании",
            name="Елена Викторовна",
            initials="Е. В.",
            position="главный бухгалтер",
            body="Выплатить разовую премию за закрытие годовой отчётности в срок.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/remote",
        _NOTE_RU,
        ("Новиков", "Волков"),
        "{term}",
        _fill(
            title="Приказ о дистанционной работе",
            name="Игорь Павлович",
            initials="И. П.",
            position="специалист службы поддержки",
            body="Перевести на дистанционный режим работы на период с 1 октября по 31 декабря 2024 года.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/training",
        _NOTE_RU,
        ("Морозова", "Соловьёва"),
        "сотрудник {term}",
        _fill(
            title="Приказ о направлении на обучение",
            name="Анна Геннадьевна",
            initials="А. Г.",
            position="руководитель проектов",
            body="Направить на курс «Управление рисками проектов» объёмом 40 академических часов.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/parttime",
        _NOTE_RU,
        ("Васильев", "Павлов"),
        "{term}",
        _fill(
            title="Приказ о неполном рабочем дне",
            name="Кирилл Андреевич",
            initials="К. А.",
            position="дизайнер интерфейсов",
            body="Установить неполный рабочий день продолжительностью 6 часов.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/mentor",
        _NOTE_RU,
        ("Зайцева", "Семёнова"),
        "{term}",
        _fill(
            title="Приказ о назначении наставника",
            name="Ольга Николаевна",
            initials="О. Н.",
            position="старший юрист",
            body="Назначить наставником двух новых юристов договорного отдела на "
            "период испытательного срока.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/reviews/engineer",
        _NOTE_EN,
        ("Smith", "Johnson"),
        "{term}",
        _fill(
            title="Annual performance review",
            name="Michael",
            position="senior backend engineer",
            date="15 January 2024",
            body="Exceeded expectations on the payments migration; goal for next year: mentor two juniors.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/reviews/sales",
        _NOTE_EN,
        ("Williams", "Garcia"),
        "{term} review",
        _fill(
            title="Mid-year performance review",
            name="Sarah",
            position="key account manager",
            date="3 July 2024",
            body="Met 92% of the quarterly quota; agreed to focus on renewals in the north region.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/travel/conference",
        _NOTE_EN,
        ("Brown", "Miller"),
        "{term}",
        _fill(
            title="Travel request",
            name="David",
            position="data engineer",
            date="2 September 2024",
            body="Attend a three-day data engineering conference in Berlin; economy flights and hotel "
            "within the standard limit.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/access/finance",
        _NOTE_EN,
        ("Wilson", "Taylor"),
        "{term}",
        _fill(
            title="Access request",
            name="Emma",
            position="financial controller",
            date="20 May 2024",
            body="Grant read-write access to the treasury module and the bank statements folder.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/onboarding/support",
        _NOTE_EN,
        ("Anderson", "Thomas"),
        "{term} onboarding",
        _fill(
            title="Onboarding checklist",
            name="James",
            position="support engineer",
            date="8 April 2024",
            body="Laptop issued, accounts created, security training booked for the first week.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/leave/parental",
        _NOTE_EN,
        ("Davis", "Jones"),
        "{term}",
        _fill(
            title="Parental leave notice",
            name="Laura",
            position="product manager",
            date="11 March 2024",
            body="Parental leave from 1 April to 30 September 2024; duties handed over to the deputy.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/exit/analyst",
        _NOTE_EN,
        ("Clarke", "Walker"),
        "{term}",
        _fill(
            title="Exit interview summary",
            name="Peter",
            position="business analyst",
            date="29 February 2024",
            body="Leaving for a role closer to home; rated the team culture highly and the tooling poorly.",
        ),
    ),
    _Pair(
        "surname",
        "surname",
        "hr/orders/sick",
        _NOTE_RU,
        ("Фёдоров", "Беляев"),
        "{term}",
        _fill(
            title="Приказ о замещении на период болезни",
            name="Роман Ильич",
            initials="Р. И.",
            position="начальник склада",
            body="Возложить обязанности начальника склада на заместителя на период временной "
            "нетрудоспособности.",
        ),
    ),
)

_ERROR_PAIRS = (
    _Pair(
        "error_code",
        "transposed",
        "it/kb/share-access",
        _ERROR_RU,
        ("0x80070005", "0x80070050"),
        "{term}",
        _fill(
            title="Не открывается сетевая папка отдела продаж",
            who="отдела продаж",
            symptoms="Ошибка появляется при открытии общей папки с отчётами.",
            cause="После миграции файлового сервера слетели права группы.",
            fix="Права группы восстановлены по шаблону отдела.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/update",
        _ERROR_RU,
        ("0x8007045D", "0x800704D5"),
        "ошибка {term}",
        _fill(
            title="Обновление Windows прерывается на 40%",
            who="ноутбуков бухгалтерии",
            symptoms="Установка накопительного обновления откатывается после перезагрузки.",
            cause="Повреждённый кэш обновлений на локальном диске.",
            fix="Кэш очищен, обновление установлено из локального репозитория.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/app-start",
        _ERROR_EN,
        ("0xC0000142", "0xC0000124"),
        "{term}",
        _fill(
            title="Desktop CRM client does not start",
            who="the CRM desktop client",
            symptoms="The window never opens; the process exits within a second.",
            cause="a stale runtime library left by the previous version.",
            fix="Repaired the runtime package through software center.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/oracle-listener",
        _ERROR_EN,
        ("ORA-12541", "ORA-12514"),
        "{term}",
        _fill(
            title="Reporting jobs cannot reach the warehouse database",
            who="the nightly report job",
            symptoms="All scheduled exports stopped at 02:00.",
            cause="the database listener was not restarted after patching.",
            fix="Restarted the listener and added it to the patching runbook.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/oracle-login",
        _ERROR_RU,
        ("ORA-01017", "ORA-01071"),
        "{term}",
        _fill(
            title="Сервис отчётности не подключается к базе",
            who="сервиса отчётности",
            symptoms="Подключение обрывается сразу после ввода учётных данных.",
            cause="Пароль сервисной учётной записи сменён без обновления конфигурации.",
            fix="Пароль обновлён в хранилище секретов, сервис перезапущен.",
        ),
    ),
    _Pair(
        "error_code",
        "sibling",
        "it/kb/proxy",
        _ERROR_EN,
        ("ERR_CONN_RESET", "ERR_CONN_REFUSED"),
        "{term}",
        _fill(
            title="Intranet portal unreachable from the branch office",
            who="Chrome on branch PCs",
            symptoms="Only the intranet portal is affected; public sites open.",
            cause="the branch proxy dropped sessions to the portal after a certificate change.",
            fix="Updated the proxy's trusted certificate bundle.",
        ),
    ),
    _Pair(
        "error_code",
        "sibling",
        "it/kb/dns",
        _ERROR_RU,
        ("ERR_NAME_NOT_RESOLVED", "ERR_ADDRESS_UNREACHABLE"),
        "{term}",
        _fill(
            title="Не открывается портал самообслуживания",
            who="удалённого офиса в Казани",
            symptoms="Браузер не открывает портал, остальные сайты работают.",
            cause="Неверная запись на DNS-сервере филиала.",
            fix="Запись исправлена, кэш DNS на клиентах сброшен.",
        ),
    ),
    _Pair(
        "error_code",
        "sibling",
        "it/kb/certificate",
        _ERROR_EN,
        ("ERR_CERT_DATE_INVALID", "ERR_CERT_AUTHORITY_INVALID"),
        "browser error {term}",
        _fill(
            title="Supplier portal shows a security warning",
            who="the supplier portal",
            symptoms="Buyers cannot submit orders; the browser blocks the page.",
            cause="the portal's certificate chain was replaced without the intermediate.",
            fix="Installed the full chain on the load balancer.",
        ),
    ),
    _Pair(
        "error_code",
        "sibling",
        "it/kb/node-api",
        _ERROR_EN,
        ("ECONNRESET", "ECONNREFUSED"),
        "{term}",
        _fill(
            title="Checkout service loses its connection to the payment gateway",
            who="the checkout service",
            symptoms="About 3% of payments fail at peak hours.",
            cause="the gateway's keep-alive timeout was shorter than the client's pool idle time.",
            fix="Lowered the pool idle timeout to 30 seconds.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/msi",
        _ERROR_RU,
        ("1603", "1630"),
        "ошибка установки {term}",
        _fill(
            title="Не устанавливается клиент электронного документооборота",
            who="новых рабочих мест",
            symptoms="Установщик завершается без сообщения на последнем шаге.",
            cause="Установщик запущен без прав администратора.",
            fix="Пакет опубликован через систему распространения ПО.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/sccm",
        _ERROR_EN,
        ("0x87D00324", "0x87D00342"),
        "{term}",
        _fill(
            title="Antivirus agent deployment fails",
            who="the antivirus agent deployment",
            symptoms="Software center reports the install as failed on 40 machines.",
            cause="the detection rule looked for an outdated version number.",
            fix="Corrected the detection rule.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/hresult",
        _ERROR_RU,
        ("0x80004005", "0x80004050"),
        "код {term}",
        _fill(
            title="Не запускается выгрузка в банк-клиент",
            who="казначейства",
            symptoms="Выгрузка платёжных поручений останавливается с неуказанной ошибкой.",
            cause="Компонент обмена не зарегистрирован после обновления.",
            fix="Компонент перерегистрирован, выгрузка работает.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/bluescreen",
        _ERROR_EN,
        ("0x0000007E", "0x000000E7"),
        "stop code {term}",
        _fill(
            title="Workstations crash after the docking driver update",
            who="the graphics workstation",
            symptoms="A blue screen appears on undocking.",
            cause="a faulty docking station driver version.",
            fix="Rolled the driver back and blocked that version.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "products/manuals/coffee-errors",
        _ERROR_RU,
        ("E-4012", "E-4021"),
        "{term}",
        _fill(
            title="Кофемашина CM-300: код на дисплее",
            who="кофемашины на кухне 5 этажа",
            symptoms="Машина не готовит напитки и мигает индикатор воды.",
            cause="Засорился фильтр подачи воды.",
            fix="Фильтр промыт, проведена декальцинация.",
        ),
    ),
    _Pair(
        "error_code",
        "sibling",
        "it/kb/smtp",
        _ERROR_EN,
        ("5.7.1", "5.1.7"),
        "SMTP {term}",
        _fill(
            title="Outgoing mail to a partner bounces",
            who="mail to the logistics partner",
            symptoms="Bounce messages arrive within a minute of sending.",
            cause="the partner's server rejects our relay after an address change.",
            fix="Updated the SPF record and asked the partner to refresh their allow list.",
        ),
    ),
    _Pair(
        "error_code",
        "transposed",
        "it/kb/app-code",
        _ERROR_RU,
        ("E1045", "E1054"),
        "{term}",
        _fill(
            title="Складской терминал не сканирует штрихкоды",
            who="терминалов сбора данных",
            symptoms="После сканирования терминал показывает код и возвращается в меню.",
            cause="Справочник номенклатуры не синхронизирован после обновления.",
            fix="Запущена полная синхронизация справочника.",
        ),
    ),
)

PAIRS = (*_CODE_PAIRS, *_SURNAME_PAIRS, *_ERROR_PAIRS)


def _pair_corpus(pair: _Pair) -> tuple[list[Document], list[Query], NearDuplicate]:
    values = dict(pair.fill)
    keys = (f"{pair.key}-a.md", f"{pair.key}-b.md")
    documents = [
        Document(key, pair.template.format(term=term, **values))
        for key, term in zip(keys, pair.terms, strict=True)
    ]
    queries = [
        Query(pair.group, pair.query.format(term=term), (key,), term)
        for key, term in zip(keys, pair.terms, strict=True)
    ]
    return documents, queries, NearDuplicate(keys[0], keys[1], pair.kind, pair.terms)


def build() -> Corpus:
    documents: list[Document] = []
    queries: list[Query] = []
    pairs: list[NearDuplicate] = []
    for pair in PAIRS:
        made, asked, twin = _pair_corpus(pair)
        documents += made
        queries += asked
        pairs.append(twin)
    written = json.loads(PARAPHRASES.read_text(encoding="utf-8"))
    documents += [Document(item["key"], item["text"]) for item in written["documents"]]
    queries += [Query("paraphrase", item["query"], tuple(item["expected"])) for item in written["queries"]]
    return Corpus(tuple(documents), tuple(queries), tuple(pairs))
