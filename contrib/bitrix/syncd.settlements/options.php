<?php
/**
 * Settings -> Module settings -> syncd: settlements. Saves the options Syncd\Settlements\Options reads.
 * Built like the kernel's own settings pages: CAdminTabControl, check_bitrix_sessid(), Option::set().
 */

use Bitrix\Main\Config\Option;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Syncd\Settlements\Options;

defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

Loc::loadMessages(__FILE__);
global $APPLICATION;

if ($APPLICATION->GetGroupRight('main') < 'W' || !Loader::includeModule('syncd.settlements')) {
    return;
}

$fields = [
    'balance_block' => 'text', 'payments_block' => 'text', 'documents_block' => 'text',
    'block_overdue' => 'checkbox', 'over_limit' => ['refuse', 'warn', 'none'], 'exempt_groups' => 'text',
    'stale_hours' => 'text', 'on_stale' => ['allow', 'check'],
];

if ($_SERVER['REQUEST_METHOD'] === 'POST' && check_bitrix_sessid() && isset($_POST['save'])) {
    foreach ($fields as $name => $type) {
        $value = $type === 'checkbox' ? (($_POST[$name] ?? '') === 'Y' ? 'Y' : 'N') : trim((string)($_POST[$name] ?? ''));
        if (is_array($type) && !in_array($value, $type, true)) {
            continue;
        }
        Option::set(Options::MODULE_ID, $name, $value);
    }
}

$tabs = [['DIV' => 'settings', 'TAB' => Loc::getMessage('SYNCD_SETTLEMENTS_OPT_TAB'), 'TITLE' => Loc::getMessage('SYNCD_SETTLEMENTS_OPT_TAB')]];
$tabControl = new CAdminTabControl('syncdSettlements', $tabs);
?>
<form method="post" action="<?= $APPLICATION->GetCurPage() ?>?mid=<?= urlencode(Options::MODULE_ID) ?>&amp;lang=<?= LANGUAGE_ID ?>">
<?= bitrix_sessid_post() ?>
<?php $tabControl->Begin(); $tabControl->BeginNextTab(); ?>
<?php foreach ($fields as $name => $type): $value = Options::get($name); ?>
    <tr>
        <td width="40%"><label for="<?= $name ?>"><?= htmlspecialcharsbx((string)Loc::getMessage('SYNCD_SETTLEMENTS_OPT_' . strtoupper($name))) ?></label></td>
        <td width="60%">
        <?php if ($type === 'checkbox'): ?>
            <input type="checkbox" id="<?= $name ?>" name="<?= $name ?>" value="Y"<?= $value === 'Y' ? ' checked' : '' ?>>
        <?php elseif (is_array($type)): ?>
            <select id="<?= $name ?>" name="<?= $name ?>">
            <?php foreach ($type as $choice): ?>
                <option value="<?= $choice ?>"<?= $value === $choice ? ' selected' : '' ?>><?= htmlspecialcharsbx((string)Loc::getMessage('SYNCD_SETTLEMENTS_OPT_' . strtoupper($name . '_' . $choice))) ?></option>
            <?php endforeach; ?>
            </select>
        <?php else: ?>
            <input type="text" size="30" id="<?= $name ?>" name="<?= $name ?>" value="<?= htmlspecialcharsbx($value) ?>">
        <?php endif; ?>
        </td>
    </tr>
<?php endforeach; ?>
<?php $tabControl->Buttons(); ?>
<input type="submit" name="save" value="<?= htmlspecialcharsbx((string)Loc::getMessage('SYNCD_SETTLEMENTS_OPT_SAVE')) ?>" class="adm-btn-save">
<?php $tabControl->End(); ?>
</form>
