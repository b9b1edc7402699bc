<?php

use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Syncd\Settlements\Blocks;
use Syncd\Settlements\Money;
use Syncd\Settlements\Options;
use Syncd\Settlements\Values;

defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

Loc::loadMessages(__FILE__);

/**
 * syncd:settlements - "My balance" in the personal account: the signed-in user's counterparties from
 * the HL-blocks syncd fills (rows with UF_BITRIX_USER_ID = the user).
 *
 * Cache: the cache id holds the user, the page, and the newest UF_UPDATED_AT (with the row count) of
 * the user's balance rows - syncd sets UF_UPDATED_AT to the export's as-of time on every apply, so a
 * new apply changes the id and the next page load reads the blocks again. That costs one indexed
 * query per page load; no tag cache is needed (syncd writes by SQL and cannot clear Bitrix's cache).
 */
class SyncdSettlementsComponent extends CBitrixComponent
{
    public function onPrepareComponentParams($arParams)
    {
        $arParams['PAGE_SIZE'] = max(1, (int)($arParams['PAGE_SIZE'] ?? 20));
        $arParams['CACHE_TIME'] = (int)($arParams['CACHE_TIME'] ?? 3600);
        return $arParams;
    }

    public function executeComponent()
    {
        global $USER, $APPLICATION;
        if (!is_object($USER) || !$USER->IsAuthorized()) {
            $APPLICATION->AuthForm(Loc::getMessage('SYNCD_SETTLEMENTS_LOGIN'));
            return null;
        }
        if (!Loader::includeModule('syncd.settlements')) {
            ShowError(Loc::getMessage('SYNCD_SETTLEMENTS_NO_MODULE'));
            return null;
        }
        $userId = (int)$USER->GetID();
        $page = max(1, (int)$this->request->get('spage'));
        $blocks = Blocks::fromOptions();
        $stamp = $blocks->ready() ? $blocks->stamp($userId) : null;
        $asOf = Values::date(explode('/', (string)$stamp)[0]);
        $stale = $asOf !== null && time() - $asOf->getTimestamp() > Options::staleSeconds();
        if ($this->startResultCache(false, [$userId, $page, $stamp, $stale])) {
            $this->arResult = $this->collect($blocks, $userId, $page, $stale);
            $this->includeComponentTemplate();
        }
        return $this->arResult;
    }

    /** @return array<string, mixed> */
    private function collect(Blocks $blocks, int $userId, int $page, bool $stale): array
    {
        if (!$blocks->ready()) {
            return ['STATUS' => 'NO_BLOCKS', 'COUNTERPARTIES' => []];
        }
        $today = new DateTimeImmutable('today');
        $list = [];
        foreach ($blocks->balances($userId) as $row) {
            $list[] = $this->counterparty($blocks, $userId, $row, $page, $today) + ['STALE' => $stale];
        }
        return ['STATUS' => $list ? 'OK' : 'NO_LINK', 'COUNTERPARTIES' => $list, 'PAGE' => $page];
    }

    /** @param array<string, mixed> $row @return array<string, mixed> */
    private function counterparty(Blocks $blocks, int $userId, array $row, int $page, DateTimeImmutable $today): array
    {
        $cur = Values::currency($row['UF_CURRENCY'] ?? null);
        $id = (string)$row['UF_CONTRACTOR_XML_ID'];
        $limit = Values::optionalMoney($row['UF_CREDIT_LIMIT'] ?? null);
        $debt = Values::money($row['UF_DEBT'] ?? null);
        $lastDate = Values::date($row['UF_LAST_PAYMENT_DATE'] ?? null);
        $asOf = Values::date($row['UF_UPDATED_AT'] ?? null);
        $size = (int)$this->arParams['PAGE_SIZE'];
        $total = $blocks->paymentCount($userId, $id);
        $payments = [];
        foreach ($blocks->payments($userId, $id, ($page - 1) * $size, $size) as $p) {
            $payments[] = [
                'DATE' => Values::date($p['UF_DATE'] ?? null)?->format('d.m.Y') ?? '',
                'NUMBER' => (string)($p['UF_NUMBER'] ?? ''),
                'KIND' => (string)Loc::getMessage('SYNCD_SETTLEMENTS_PAY_' . strtoupper((string)($p['UF_KIND'] ?? ''))),
                'SUM' => Money::html(Values::money($p['UF_SUM'] ?? null), Values::currency($p['UF_CURRENCY'] ?? $cur)),
            ];
        }
        $documents = [];
        foreach ($blocks->documents($userId, $id) as $d) {
            $due = Values::date($d['UF_DUE_DATE'] ?? null);
            $outstanding = Values::money($d['UF_OUTSTANDING'] ?? null);
            $dcur = Values::currency($d['UF_CURRENCY'] ?? $cur);
            $documents[] = [
                'KIND' => (string)Loc::getMessage('SYNCD_SETTLEMENTS_DOC_' . strtoupper((string)($d['UF_KIND'] ?? ''))),
                'NUMBER' => (string)($d['UF_NUMBER'] ?? ''),
                'DATE' => Values::date($d['UF_DATE'] ?? null)?->format('d.m.Y') ?? '',
                'DUE_DATE' => $due?->format('d.m.Y') ?? '',
                'AMOUNT' => $d['UF_AMOUNT'] === null ? '' : Money::html(Values::money($d['UF_AMOUNT']), $dcur),
                'OUTSTANDING' => Money::html($outstanding, $dcur),
                'OVERDUE' => $due !== null && $due < $today && $outstanding > 0,
            ];
        }
        return [
            'NAME' => (string)($row['UF_NAME'] ?? ''),
            'INN' => (string)($row['UF_INN'] ?? ''),
            'KPP' => (string)($row['UF_KPP'] ?? ''),
            'CURRENCY' => $cur,
            'DEBT' => Money::html($debt, $cur),
            'PAYABLE' => Money::html(Values::money($row['UF_PAYABLE'] ?? null), $cur),
            'HAS_PAYABLE' => Values::money($row['UF_PAYABLE'] ?? null) > 0,
            'OVERDUE' => Money::html(Values::money($row['UF_OVERDUE_DEBT'] ?? null), $cur),
            'HAS_OVERDUE' => Values::money($row['UF_OVERDUE_DEBT'] ?? null) > 0,
            'CREDIT_LIMIT' => $limit !== null && $limit > 0 ? Money::html($limit, $cur) : '',
            'CREDIT_LEFT' => $limit !== null && $limit > 0 ? Money::html(max(0.0, $limit - $debt), $cur) : '',
            'LAST_PAYMENT_DATE' => $lastDate?->format('d.m.Y') ?? '',
            'LAST_PAYMENT_SUM' => $row['UF_LAST_PAYMENT_SUM'] === null ? '' : Money::html(Values::money($row['UF_LAST_PAYMENT_SUM']), $cur),
            'AS_OF' => $asOf?->format('d.m.Y H:i') ?? '',
            'DOCUMENTS' => $documents,
            'PAYMENTS' => $payments,
            'PAGES' => max(1, (int)ceil($total / $size)),
        ];
    }
}
