<?php

declare(strict_types=1);

namespace Syncd\Settlements;

use Bitrix\Main\Event;
use Bitrix\Main\EventResult;
use Bitrix\Main\Localization\Loc;
use Bitrix\Sale\OrderBase;
use Bitrix\Sale\ResultError;

Loc::loadMessages(__FILE__);

/**
 * The order rule: a D7 handler of sale / OnSaleOrderBeforeSaved, registered by install/index.php.
 *
 * Only a NEW order is checked (a manager editing an existing one is never blocked). Refusing returns
 * EventResult::ERROR with a Sale\ResultError: Order::save() then writes nothing and returns the error,
 * which the checkout shows. Anything unexpected (blocks missing, database error) allows the order and
 * writes to the event log: this rule must never break the checkout.
 */
final class OrderGuard
{
    public const AUDIT_TYPE = 'SYNCD_SETTLEMENTS';

    public static function onSaleOrderBeforeSaved(Event $event): ?EventResult
    {
        $order = $event->getParameter('ENTITY');
        if (!$order instanceof OrderBase || !$order->isNew()) {
            return null;
        }
        try {
            $refusal = (new self(Blocks::fromOptions()))->check(
                (int)$order->getUserId(),
                (float)$order->getPrice(),
                (string)$order->getCurrency()
            );
        } catch (\Throwable $e) {
            self::log('ERROR', 0, 'order rule skipped: ' . get_class($e) . ': ' . $e->getMessage());
            return null;
        }
        if ($refusal === null) {
            return null;
        }
        return new EventResult(EventResult::ERROR, new ResultError($refusal[0], $refusal[1]), 'sale');
    }

    public function __construct(private Blocks $blocks)
    {
    }

    /** @return array{0: string, 1: string}|null the refusal (message, code), or null to allow */
    public function check(int $userId, float $price, string $currency): ?array
    {
        if ($userId <= 0 || $this->exempt()) {
            return null;
        }
        if (!$this->blocks->ready()) {
            self::log('WARNING', $userId, 'order allowed unchecked: the HL-blocks of syncd are missing (run `syncd migrate`)');
            return null;
        }
        $rows = $this->blocks->balances($userId);
        if ($rows === []) {
            return null; // no counterparty linked to this user
        }
        $asOf = null;
        $overdue = []; // currency => sum: counterparties may keep different currencies
        $debt = $limit = 0.0;
        $limited = false;
        $cur = Values::currency($rows[0]['UF_CURRENCY'] ?? null);
        foreach ($rows as $row) {
            $rowCurrency = Values::currency($row['UF_CURRENCY'] ?? null);
            $overdue[$rowCurrency] = ($overdue[$rowCurrency] ?? 0.0) + Values::money($row['UF_OVERDUE_DEBT'] ?? null);
            $stamp = Values::date($row['UF_UPDATED_AT'] ?? null);
            $asOf = ($asOf === null || ($stamp !== null && $stamp > $asOf)) ? $stamp : $asOf;
            if (Values::currency($row['UF_CURRENCY'] ?? null) === ($currency !== '' ? $currency : $cur)) {
                $debt += Values::money($row['UF_DEBT'] ?? null);
                $rowLimit = Values::optionalMoney($row['UF_CREDIT_LIMIT'] ?? null);
                if ($rowLimit !== null && $rowLimit > 0) {
                    $limit += $rowLimit;
                    $limited = true;
                }
            }
        }
        if ($asOf === null || time() - $asOf->getTimestamp() > Options::staleSeconds()) {
            $when = $asOf ? $asOf->format('d.m.Y H:i') : '?';
            if (Options::get('on_stale') !== 'check') {
                self::log('WARNING', $userId, "order allowed unchecked: settlements data is stale (as of $when)");
                return null;
            }
            self::log('INFO', $userId, "order checked on stale settlements data (as of $when)");
        }
        $overdue = array_filter($overdue, static fn(float $sum): bool => $sum > 0.005);
        if (Options::flag('block_overdue') && $overdue !== []) {
            $sum = implode(' + ', array_map([Money::class, 'text'], $overdue, array_keys($overdue)));
            return [(string)Loc::getMessage('SYNCD_SETTLEMENTS_REFUSE_OVERDUE', ['#SUM#' => $sum]), 'SYNCD_OVERDUE'];
        }
        $mode = Options::get('over_limit');
        if ($limited && $mode !== 'none' && $debt + $price > $limit + 0.005) {
            $cur = $currency !== '' ? $currency : $cur;
            $repl = [
                '#DEBT#' => Money::text($debt, $cur),
                '#PRICE#' => Money::text($price, $cur),
                '#LIMIT#' => Money::text($limit, $cur),
                '#LEFT#' => Money::text(max(0.0, $limit - $debt), $cur),
            ];
            $message = (string)Loc::getMessage('SYNCD_SETTLEMENTS_REFUSE_LIMIT', $repl);
            if ($mode === 'refuse') {
                return [$message, 'SYNCD_CREDIT_LIMIT'];
            }
            self::log('WARNING', $userId, 'order over the credit limit allowed (option: warn): ' . $message);
        }
        return null;
    }

    /** The current user (the one placing the order: the buyer, or a manager for them) is in an exempt group. */
    private function exempt(): bool
    {
        $user = $GLOBALS['USER'] ?? null;
        if (!is_object($user) || !method_exists($user, 'GetUserGroupArray')) {
            return false;
        }
        $groups = array_map('intval', (array)$user->GetUserGroupArray());
        return array_intersect($groups, Options::groups('exempt_groups')) !== [];
    }

    /** A line in the site's event log (Settings -> Tools -> Event log), type SYNCD_SETTLEMENTS. */
    public static function log(string $severity, int $userId, string $text): void
    {
        if (class_exists('CEventLog')) {
            \CEventLog::Add([
                'SEVERITY' => $severity,
                'AUDIT_TYPE_ID' => self::AUDIT_TYPE,
                'MODULE_ID' => Options::MODULE_ID,
                'ITEM_ID' => $userId,
                'DESCRIPTION' => $text,
            ]);
        }
    }
}
