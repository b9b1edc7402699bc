<?php
/** @var array $arResult @var array $arParams @var CBitrixComponentTemplate $this */

use Bitrix\Main\Localization\Loc;

defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

Loc::loadMessages(__FILE__);
$m = static fn(string $code, array $r = []): string => (string)Loc::getMessage('SYNCD_SETTLEMENTS_T_' . $code, $r);
$e = static fn($s): string => htmlspecialcharsbx((string)$s);
?>
<div class="syncd-settlements">
<?php if ($arResult['STATUS'] !== 'OK'): ?>
    <p class="syncd-note"><?= $e($m($arResult['STATUS'])) ?></p>
<?php endif; ?>
<?php foreach ($arResult['COUNTERPARTIES'] as $cp): ?>
    <section class="syncd-cp">
        <h2><?= $e($cp['NAME']) ?></h2>
        <?php if ($cp['INN'] !== ''): ?>
            <div class="syncd-ids"><?= $e($m('INN')) ?> <?= $e($cp['INN']) ?><?= $cp['KPP'] !== '' ? ', ' . $e($m('KPP')) . ' ' . $e($cp['KPP']) : '' ?></div>
        <?php endif; ?>
        <div class="syncd-asof"><?= $e($m('AS_OF', ['#TIME#' => $cp['AS_OF']])) ?></div>
        <?php if ($cp['STALE']): ?>
            <div class="syncd-stale"><?= $e($m('STALE')) ?></div>
        <?php endif; ?>
        <dl class="syncd-sums">
            <div><dt><?= $e($m('DEBT')) ?></dt><dd class="syncd-debt"><?= $cp['DEBT'] ?></dd></div>
            <?php if ($cp['HAS_OVERDUE']): ?>
                <div class="syncd-overdue"><dt><?= $e($m('OVERDUE')) ?></dt><dd><?= $cp['OVERDUE'] ?></dd></div>
            <?php endif; ?>
            <?php if ($cp['HAS_PAYABLE']): ?>
                <div><dt><?= $e($m('PAYABLE')) ?></dt><dd><?= $cp['PAYABLE'] ?></dd></div>
            <?php endif; ?>
            <?php if ($cp['CREDIT_LIMIT'] !== ''): ?>
                <div><dt><?= $e($m('LIMIT')) ?></dt><dd><?= $cp['CREDIT_LIMIT'] ?></dd></div>
                <div><dt><?= $e($m('LEFT')) ?></dt><dd><?= $cp['CREDIT_LEFT'] ?></dd></div>
            <?php endif; ?>
            <?php if ($cp['LAST_PAYMENT_DATE'] !== ''): ?>
                <div><dt><?= $e($m('LAST_PAYMENT')) ?></dt><dd><?= $e($cp['LAST_PAYMENT_DATE']) ?><?= $cp['LAST_PAYMENT_SUM'] !== '' ? ' — ' . $cp['LAST_PAYMENT_SUM'] : '' ?></dd></div>
            <?php endif; ?>
        </dl>

        <h3><?= $e($m('DOCUMENTS')) ?></h3>
        <?php if (!$cp['DOCUMENTS']): ?>
            <p class="syncd-note"><?= $e($m('NO_DOCUMENTS')) ?></p>
        <?php else: ?>
        <table class="syncd-table">
            <thead><tr><th><?= $e($m('DOCUMENT')) ?></th><th><?= $e($m('DATE')) ?></th><th><?= $e($m('DUE')) ?></th><th><?= $e($m('AMOUNT')) ?></th><th><?= $e($m('OUTSTANDING')) ?></th></tr></thead>
            <tbody>
            <?php foreach ($cp['DOCUMENTS'] as $doc): ?>
                <tr class="syncd-doc<?= $doc['OVERDUE'] ? ' syncd-overdue' : '' ?>">
                    <td data-label="<?= $e($m('DOCUMENT')) ?>"><?= $e($doc['KIND']) ?> № <?= $e($doc['NUMBER']) ?><?= $doc['OVERDUE'] ? ' <span class="syncd-mark">' . $e($m('OVERDUE_MARK')) . '</span>' : '' ?></td>
                    <td data-label="<?= $e($m('DATE')) ?>"><?= $e($doc['DATE']) ?></td>
                    <td data-label="<?= $e($m('DUE')) ?>"><?= $e($doc['DUE_DATE']) ?></td>
                    <td data-label="<?= $e($m('AMOUNT')) ?>"><?= $doc['AMOUNT'] ?></td>
                    <td data-label="<?= $e($m('OUTSTANDING')) ?>"><?= $doc['OUTSTANDING'] ?></td>
                </tr>
            <?php endforeach; ?>
            </tbody>
        </table>
        <?php endif; ?>

        <h3><?= $e($m('PAYMENTS')) ?></h3>
        <?php if (!$cp['PAYMENTS']): ?>
            <p class="syncd-note"><?= $e($m('NO_PAYMENTS')) ?></p>
        <?php else: ?>
        <table class="syncd-table">
            <thead><tr><th><?= $e($m('DATE')) ?></th><th><?= $e($m('PAYMENT')) ?></th><th><?= $e($m('SUM')) ?></th></tr></thead>
            <tbody>
            <?php foreach ($cp['PAYMENTS'] as $pay): ?>
                <tr class="syncd-pay">
                    <td data-label="<?= $e($m('DATE')) ?>"><?= $e($pay['DATE']) ?></td>
                    <td data-label="<?= $e($m('PAYMENT')) ?>"><?= $e($pay['KIND']) ?><?= $pay['NUMBER'] !== '' ? ' № ' . $e($pay['NUMBER']) : '' ?></td>
                    <td data-label="<?= $e($m('SUM')) ?>"><?= $pay['SUM'] ?></td>
                </tr>
            <?php endforeach; ?>
            </tbody>
        </table>
        <?php if ($cp['PAGES'] > 1): ?>
            <nav class="syncd-pages">
            <?php for ($i = 1; $i <= $cp['PAGES']; $i++): ?>
                <?= $i === $arResult['PAGE'] ? '<b>' . $i . '</b>' : '<a href="?spage=' . $i . '">' . $i . '</a>' ?>
            <?php endfor; ?>
            </nav>
        <?php endif; ?>
        <?php endif; ?>
    </section>
<?php endforeach; ?>
</div>
